"""Admin API for demo links, behind a bearer token; off when no token is configured."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field

from ..backend import link_tools_problem
from ..deps import LinksDep, SettingsDep, SignerDep, get_settings
from ..errors import ApiError
from ..links import DemoLink, LinkCreate, LinkExists, LinkNotFound, LinkUpdate
from ..links.sharing import LinkShare, share
from ..settings import Settings


def require_admin(request: Request, settings: Settings) -> None:
    token = settings.admin_token
    if token is None:
        raise ApiError(404, "admin_off", "the admin API is off: set VOICE_RELAY_ADMIN_TOKEN")
    given = request.headers.get("authorization", "")
    expected = f"Bearer {token.get_secret_value()}"
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise ApiError(401, "unauthorized", "a valid admin token is required")


class AdminRoute(APIRoute):
    """Checks the admin token before FastAPI reads and parses the body (dependencies run after)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def authenticated(request: Request) -> Response:
            require_admin(request, get_settings(request))
            return await handle(request)

        return authenticated


router = APIRouter(prefix="/api/admin/links", tags=["admin"], route_class=AdminRoute)


class LinkOut(BaseModel):
    link: DemoLink
    share: LinkShare


class TokenRequest(BaseModel):
    ttl_s: float = Field(7 * 24 * 3600, gt=0, le=365 * 24 * 3600)


class TokenOut(BaseModel):
    token: str
    share: LinkShare


async def get_link(slug: str, links: LinksDep) -> DemoLink:
    try:
        return await links.get(slug)
    except LinkNotFound:
        raise ApiError(404, "link_not_found", f"no demo link named {slug!r}") from None


LinkDep = Annotated[DemoLink, Depends(get_link)]


def check_tools(link: LinkCreate | DemoLink, settings: Settings) -> None:
    """Tools this server cannot call as declared are refused now, not at the first call."""
    problem = link_tools_problem(settings, link.tools, link.backend)
    if problem is not None:
        raise ApiError(400, "tool_refused", problem)


def out(link: DemoLink, settings: Settings) -> LinkOut:
    return LinkOut(link=link, share=share(settings.base_url(), link))


@router.get("")
async def list_links(links: LinksDep, settings: SettingsDep) -> list[LinkOut]:
    return [out(link, settings) for link in await links.list()]


@router.post("", status_code=201)
async def create_link(body: LinkCreate, links: LinksDep, settings: SettingsDep) -> LinkOut:
    check_tools(body, settings)
    try:
        return out(await links.create(body), settings)
    except LinkExists as exc:
        raise ApiError(409, "link_exists", str(exc)) from None


@router.get("/{slug}")
async def show_link(link: LinkDep, settings: SettingsDep) -> LinkOut:
    return out(link, settings)


@router.patch("/{slug}")
async def update_link(
    link: LinkDep, body: LinkUpdate, links: LinksDep, settings: SettingsDep
) -> LinkOut:
    check_tools(link.updated(body), settings)
    return out(await links.update(link.slug, body), settings)


@router.delete("/{slug}")
async def revoke_link(link: LinkDep, links: LinksDep, settings: SettingsDep) -> LinkOut:
    return out(await links.revoke(link.slug), settings)


@router.post("/{slug}/tokens", status_code=201)
async def issue_token(
    link: LinkDep, signer: SignerDep, settings: SettingsDep, body: TokenRequest | None = None
) -> TokenOut:
    token = signer.issue(link.slug, (body or TokenRequest()).ttl_s)
    return TokenOut(token=token, share=share(settings.base_url(), link, token))
