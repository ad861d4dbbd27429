"""The uvicorn server, ending conversations before it closes their connections."""

from __future__ import annotations

import socket

import uvicorn
from fastapi import FastAPI

from relay import SessionRegistry


class RelayServer(uvicorn.Server):
    """Closes every session with reason `server_shutdown` before uvicorn drops its sockets.

    Without this the local backend's sockets close first and sessions would end as if the
    backend had failed.
    """

    def __init__(self, app: FastAPI, **options: object) -> None:
        super().__init__(uvicorn.Config(app, **options))  # type: ignore[arg-type]
        self._app = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        registry = getattr(self._app.state, "registry", None)
        if isinstance(registry, SessionRegistry):
            await registry.close_all("server_shutdown")
        await super().shutdown(sockets)
