"""The FastAPI application: composes routes, static files, templates and the session registry."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from localmodel.models import preload_model
from relay import MediaOptions, SessionRegistry

from .admission import shared_state_unavailable
from .backend import backend_config, session_options
from .cluster import ClusterNode, Observers
from .cluster import routes as cluster_routes
from .errors import install_error_handlers
from .links import SessionLimiter, seed_built_in_links
from .links.redis_store import RedisError, shared_state
from .links.tokens import signer_for
from .metrics import Metrics, lag_probe
from .metrics import router as metrics_router
from .middleware import BodyLimitMiddleware, SecurityHeadersMiddleware, TrustedHostMiddleware
from .routes import admin, health, ice, links, pages, realtime, sessions
from .settings import Settings, secret_value
from .templating import STATIC_DIR
from .workers import WorkerPool, machine_settings, workers_running

logger = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None, *, media: MediaOptions = MediaOptions(), workers: int = 1
) -> FastAPI:
    """`media`: how sessions move audio (the product's way by default; benchmarks vary it).

    `workers` > 1: this process is the signalling front and the sessions run in that many media
    worker processes (web/workers/); 1 runs them here."""
    settings = machine_settings(settings or Settings(), workers)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with shared_state(settings) as state:
            # With Redis this instance's sessions, load and leases are in the cluster's view.
            cluster = ClusterNode(settings, state.redis, draining=lambda: app.state.draining)
            app.state.cluster = cluster
            app.state.registry = SessionRegistry(
                session_options(settings, media=media),
                observer=Observers(app.state.metrics, cluster),
            )
            cluster.attach(app.state.registry)
            if workers > 1:  # this process is the front; sessions run in media workers
                app.state.workers = WorkerPool(settings, workers, app.state.metrics, cluster)
                cluster.attach(app.state.workers)
            app.state.links = state.links
            try:
                await seed_built_in_links(app.state.links)
            except RedisError as exc:
                # Another instance or a later start seeds them; sessions get 503 until Redis is up.
                logger.warning("shared state (Redis) unreachable at start: %s", exc)
            app.state.signer = signer_for(secret_value(settings.secret_key), settings.data_dir)
            app.state.limiter = SessionLimiter(
                settings.sessions_per_ip_per_minute, state.rate_storage, cluster.leases
            )
            app.state.ice_rate = ice.ice_rate()
            backend = backend_config(settings)
            logger.info("voice-relay backend=%s model=%s", backend.dialect, backend.model)
            if backend.dialect == "local" and not settings.backend_url:
                # Load the local model's weights now, not during the first visitor's first turn.
                await asyncio.to_thread(preload_model, backend.model)
            async with cluster.running(), workers_running(app.state.workers, media):
                try:
                    async with lag_probe(app.state.metrics):
                        yield
                finally:
                    await app.state.registry.close_all("server_shutdown")

    app = FastAPI(title="voice-relay", lifespan=lifespan)
    app.state.settings = settings
    app.state.metrics = Metrics(settings)  # per app: tests run several in one process
    app.state.draining = False  # True after SIGTERM (web/server.py): no new sessions
    app.state.workers = None  # the WorkerPool while workers > 1 (its lifespan starts it)
    install_error_handlers(app)
    app.add_exception_handler(RedisError, shared_state_unavailable)
    app.include_router(sessions.router)
    app.include_router(health.router)
    app.include_router(ice.router)
    app.include_router(admin.router)
    app.include_router(cluster_routes.router)
    app.include_router(realtime.router)
    app.include_router(pages.router)
    app.include_router(links.router)
    app.include_router(metrics_router)
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")
    install_middleware(app, settings)
    return app


# Request body limits by path prefix: an SDP offer, a link's fields (instructions up to 8,000
# characters, JSON-escaped), nothing else takes a body.
BODY_LIMITS = [("/api/sessions", 64 * 1024), ("/api/admin/", 256 * 1024)]
DEFAULT_BODY_LIMIT = 4 * 1024


def install_middleware(app: FastAPI, settings: Settings) -> None:
    """Outermost first: proxy headers, trusted hosts, security headers, body limits."""
    app.add_middleware(BodyLimitMiddleware, limits=BODY_LIMITS, default_bytes=DEFAULT_BODY_LIMIT)
    app.add_middleware(SecurityHeadersMiddleware)
    hosts = settings.allowed_hosts_or_default()
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=hosts)
    if settings.trusted_proxies:
        # Only a configured proxy's X-Forwarded-For/-Proto set the client address and scheme.
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies)
    every_interface = settings.host in {"0.0.0.0", "::", ""}
    if every_interface and not (settings.public_url or settings.allowed_hosts):
        logger.warning(
            "listening on every interface but answering only to %s: set VOICE_RELAY_PUBLIC_URL "
            "or VOICE_RELAY_ALLOWED_HOSTS to the names people use",
            ", ".join(hosts),
        )
