"""Who may start a session: the link's state and token, the page's origin, and the limits."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse

from .errors import ApiError, error_response
from .links import DemoLink, Lease, LinkSigner, LinkStore, RateLimited, SessionLimiter
from .links.access import LinkRefused, open_link, origin_allowed, origin_of
from .links.redis_store import RedisError
from .settings import Settings

DRAINING_RETRY_AFTER_S = 5  # by then a load balancer sends the retry to another instance
SHARED_STATE_RETRY_AFTER_S = 10
SHARED_STATE_MESSAGE = (
    "the shared state (Redis) this server counts its limits in is unreachable; "
    "no new conversation starts until it is back"
)


def shared_state_refusal() -> ApiError:
    """Quotas that cannot be counted refuse, never let a session in uncounted."""
    return ApiError(
        503,
        "shared_state_unavailable",
        SHARED_STATE_MESSAGE,
        {"Retry-After": str(SHARED_STATE_RETRY_AFTER_S)},
    )


async def shared_state_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """Any route that reaches a lost Redis (links, admin API) answers 503, not 500."""
    refusal = shared_state_refusal()
    return error_response(refusal.status, refusal.code, refusal.message, refusal.headers)


def own_origins(request: Request, settings: Settings) -> set[str]:
    """The origins this server's own pages are served from."""
    origins = {origin_of(settings.base_url())}
    host = request.headers.get("host")
    if host:
        origins.add(f"{request.url.scheme}://{host}".lower())
    return origins


def refuse_while_draining(request: Request) -> None:
    """After SIGTERM (web/server.py) running calls go on, but no new one starts here."""
    if getattr(request.app.state, "draining", False):
        raise ApiError(
            503,
            "draining",
            "this server is shutting down; please try again",
            {"Retry-After": str(DRAINING_RETRY_AFTER_S)},
        )


async def check_access(
    request: Request,
    settings: Settings,
    store: LinkStore,
    signer: LinkSigner,
    slug: str | None,
    token: str | None,
) -> DemoLink | None:
    """The link (if any) is live and its token good, and the page's origin may use it."""
    link = None
    if slug is not None:
        try:
            link = await open_link(store, signer, slug, token)
        except LinkRefused as refusal:
            raise ApiError(refusal.status, refusal.code, refusal.message) from None
    origin = request.headers.get("origin")
    allowed = own_origins(request, settings)
    if link is not None and not origin_allowed(link, origin, allowed):
        raise ApiError(403, "origin_not_allowed", f"this demo may not be used from {origin}")
    if link is None and origin is not None and origin.lower() not in allowed:
        # The server's own persona is for its own pages; other sites embed a demo link.
        raise ApiError(403, "origin_not_allowed", f"sessions may not be started from {origin}")
    return link


async def admit(
    request: Request,
    settings: Settings,
    store: LinkStore,
    signer: LinkSigner,
    limiter: SessionLimiter,
    slug: str | None,
    token: str | None,
) -> tuple[DemoLink | None, Lease]:
    """Checks one session request; the lease must be released when the session ends."""
    try:
        link = await check_access(request, settings, store, signer, slug, token)
        backend = link.backend if link is not None and link.backend else settings.resolved_backend
        if backend != "local" and settings.key_for(backend) is None and not settings.backend_url:
            raise ApiError(503, "backend_not_configured", f"this server has no key for {backend}")
        client_ip = request.client.host if request.client else "unknown"
        try:
            lease = await limiter.acquire(link, client_ip)
        except RateLimited as exc:
            raise ApiError(
                429, "rate_limited", str(exc), {"Retry-After": str(exc.retry_after_s)}
            ) from None
        return link, lease
    except RedisError:  # shared state unreachable: never admit a session uncounted
        raise shared_state_refusal() from None
