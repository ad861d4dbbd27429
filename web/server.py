"""The uvicorn server, ending conversations before it closes their connections."""

from __future__ import annotations

import asyncio
import logging
import socket
from types import FrameType
from typing import Protocol

import uvicorn
from fastapi import FastAPI

from relay import EndReason, SessionRegistry

from .realtime_guard import UVICORN_OPTIONS

logger = logging.getLogger(__name__)

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


class LiveSessions(Protocol):
    """A SessionRegistry, or the WorkerPool whose workers hold the sessions (web/workers/)."""

    def __len__(self) -> int: ...

    async def wait_empty(self, timeout_s: float) -> bool: ...

    async def close_all(self, reason: str) -> None: ...


class RelayServer(uvicorn.Server):
    """Drains on SIGTERM/SIGINT, and ends conversations before uvicorn drops its sockets.

    The first signal marks the app draining (`/readyz` 503, new sessions refused) and lets
    running conversations go on until none is left or `drain_s` has passed; the rest then end
    with `server_draining`, which tells the page to reconnect (to another instance). A second
    signal ends at once. Sessions end before the sockets close: otherwise the local backend's
    sockets close first and sessions would end as if the backend had failed.
    """

    def __init__(self, app: FastAPI, **options: object) -> None:
        super().__init__(uvicorn.Config(app, **{**SERVER_LIMITS, **options}))  # type: ignore[arg-type]
        self._app = app
        app.state.draining = False
        self._drain: asyncio.Task[None] | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # A signal handler: no logging here (its lock may be held by the code interrupted).
        if self._app.state.draining:
            self.should_exit = self.force_exit = True
        else:
            # Not recorded in _captured_signals: a finished drain is a clean exit (status 0).
            self._app.state.draining = True

    async def on_tick(self, counter: int) -> bool:
        if self._app.state.draining and self._drain is None:
            self._drain = asyncio.create_task(self._drain_sessions())
        return await super().on_tick(counter)

    async def _drain_sessions(self) -> None:
        drain_s = getattr(self._app.state.settings, "drain_s", 0.0)
        holders = self._holders()
        live = sum(len(holder) for holder in holders)
        if live:
            logger.info("draining: %d conversations may go on for %.0f s", live, drain_s)
            deadline = asyncio.get_running_loop().time() + drain_s
            for holder in holders:  # in this process and on its media workers
                await holder.wait_empty(max(0.0, deadline - asyncio.get_running_loop().time()))
        self.should_exit = True

    def _holders(self) -> list[LiveSessions]:
        """Who holds this server's conversations: its registry, and its media workers."""
        holders: list[LiveSessions] = []
        registry = getattr(self._app.state, "registry", None)
        if isinstance(registry, SessionRegistry):
            holders.append(registry)
        workers = getattr(self._app.state, "workers", None)
        if workers is not None:
            holders.append(workers)
        return holders

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.force_exit:
            logger.warning("second signal: ending every conversation now")
        draining = self._app.state.draining
        reason = EndReason.SERVER_DRAINING if draining else EndReason.SERVER_SHUTDOWN
        await asyncio.gather(*(holder.close_all(reason) for holder in self._holders()))
        if self._drain is not None:
            self._drain.cancel()
        await super().shutdown(sockets)
