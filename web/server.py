"""The uvicorn server, ending conversations before it closes their connections."""

from __future__ import annotations

import socket

import uvicorn
from fastapi import FastAPI

from relay import SessionRegistry

from .realtime_guard import UVICORN_OPTIONS

# What uvicorn itself can bound (docs/security.md): it has no timeout for a request that is still
# arriving, so slow clients are a reverse proxy's job. These are defaults a caller may override.
SERVER_LIMITS: dict[str, object] = {
    "http": "h11",  # the limits below are h11's; httptools would bring its own
    "h11_max_incomplete_event_size": 16 * 1024,  # request line plus headers
    "timeout_keep_alive": 5,  # an idle keep-alive connection closes after this many seconds
    "timeout_graceful_shutdown": 10,  # then open connections are dropped
    "limit_concurrency": 1000,  # connections and tasks at once; beyond that 503
    # Proxy headers are the app's business (VOICE_RELAY_TRUSTED_PROXIES): uvicorn's default
    # would believe X-Forwarded-For from any local process.
    "proxy_headers": False,
    "server_header": False,
    **UVICORN_OPTIONS,  # /v1/realtime: bounded messages, no permessage-deflate
}


class RelayServer(uvicorn.Server):
    """Closes every session with reason `server_shutdown` before uvicorn drops its sockets.

    Without this the local backend's sockets close first and sessions would end as if the
    backend had failed.
    """

    def __init__(self, app: FastAPI, **options: object) -> None:
        super().__init__(uvicorn.Config(app, **{**SERVER_LIMITS, **options}))  # type: ignore[arg-type]
        self._app = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        registry = getattr(self._app.state, "registry", None)
        if isinstance(registry, SessionRegistry):
            await registry.close_all("server_shutdown")
        await super().shutdown(sockets)
