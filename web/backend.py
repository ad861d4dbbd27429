"""Turns settings into the relay's backend and session configuration."""

from __future__ import annotations

from relay import BackendConfig, IceServerConfig, SessionOptions

from .settings import Settings


def backend_config(settings: Settings) -> BackendConfig:
    backend = settings.resolved_backend
    if settings.backend_url:
        url = settings.backend_url
    elif backend == "local":
        url = settings.local_backend_url()
    else:
        url = ""  # the dialect's own public endpoint
    key = settings.api_key()
    return BackendConfig(
        dialect=backend,
        url=url,
        model=settings.resolved_model,
        api_key=key.get_secret_value() if key is not None else None,
        voice=settings.voice,
        instructions=settings.instructions,
    )


def session_options(settings: Settings) -> SessionOptions:
    servers = [IceServerConfig(s.urls, s.username, s.credential) for s in settings.ice_servers]
    return SessionOptions(ice_servers=servers, max_duration_s=settings.max_session_s)
