"""The FastAPI application: composes routes, static files, templates and the session registry."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from localmodel.models import preload_model
from relay import MediaOptions, SessionRegistry

from .backend import backend_config, session_options
from .errors import install_error_handlers
from .links import LINKS_FILE, SessionLimiter, SqliteLinkStore, seed_built_in_links
from .links.tokens import signer_for
from .routes import admin, links, pages, realtime, sessions
from .settings import Settings, secret_value
from .templating import STATIC_DIR

logger = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None, *, media: MediaOptions = MediaOptions()
) -> FastAPI:
    """`media`: how sessions move audio (the product's way by default; benchmarks vary it)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.registry = SessionRegistry(session_options(settings, media=media))
        app.state.links = SqliteLinkStore(settings.data_dir / LINKS_FILE)
        await seed_built_in_links(app.state.links)
        app.state.signer = signer_for(secret_value(settings.secret_key), settings.data_dir)
        app.state.limiter = SessionLimiter(settings.sessions_per_ip_per_minute)
        backend = backend_config(settings)
        logger.info("voice-relay backend=%s model=%s", backend.dialect, backend.model)
        if backend.dialect == "local" and not settings.backend_url:
            # Load the local model's weights now, not during the first visitor's first turn.
            await asyncio.to_thread(preload_model, backend.model)
        try:
            yield
        finally:
            await app.state.registry.close_all("server_shutdown")

    app = FastAPI(title="voice-relay", lifespan=lifespan)
    app.state.settings = settings
    install_error_handlers(app)
    app.include_router(sessions.router)
    app.include_router(admin.router)
    app.include_router(realtime.router)
    app.include_router(pages.router)
    app.include_router(links.router)
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")
    return app
