"""Shared fixtures: a live app on 127.0.0.1 (host candidates there only), shortened ICE timers."""

from __future__ import annotations

import asyncio
import socket
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aioice.ice
import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from relay import MediaOptions, SessionRegistry
from web.app import create_app
from web.server import RelayServer
from web.settings import Settings

from .media import LOOPBACK


@pytest.fixture
def short_consent_timers() -> Iterator[None]:
    """Make ICE consent freshness (RFC 7675) notice a vanished peer in about a second."""
    interval, failures = aioice.ice.CONSENT_INTERVAL, aioice.ice.CONSENT_FAILURES
    aioice.ice.CONSENT_INTERVAL, aioice.ice.CONSENT_FAILURES = 0.2, 3
    yield
    aioice.ice.CONSENT_INTERVAL, aioice.ice.CONSENT_FAILURES = interval, failures


def make_settings(**overrides: Any) -> Settings:
    # `echo` answers at once and deterministically; tests of the assistant ask for it.
    values: dict[str, Any] = {
        "host": LOOPBACK,
        "ice_addresses": [LOOPBACK],
        "backend": "local",
    }
    values.update(overrides)
    if values["backend"] == "local":
        values.setdefault("model", "echo")
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@dataclass
class LiveServer:
    app: FastAPI
    url: str

    @property
    def registry(self) -> SessionRegistry:
        registry = self.app.state.registry
        assert isinstance(registry, SessionRegistry)
        return registry

    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=10.0)


@asynccontextmanager
async def live_app(
    media: MediaOptions = MediaOptions(), **overrides: Any
) -> AsyncIterator[LiveServer]:
    """The whole app served by uvicorn on a free port of 127.0.0.1, in this event loop."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((LOOPBACK, 0))
    port = sock.getsockname()[1]
    data_dir = tempfile.TemporaryDirectory(prefix="voice-relay-test-")
    overrides.setdefault("data_dir", Path(data_dir.name))
    app = create_app(make_settings(port=port, **overrides), media=media)
    server = RelayServer(app, log_level="warning", lifespan="on")
    try:
        async with serving(server, sock):
            yield LiveServer(app, f"http://{LOOPBACK}:{port}")
    finally:
        sock.close()
        data_dir.cleanup()


@asynccontextmanager
async def serving(server: uvicorn.Server, sock: socket.socket) -> AsyncIterator[None]:
    """Runs `server` on the bound `sock` from its start until the block ends."""
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        yield
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


@pytest.fixture
async def live_server(request: pytest.FixtureRequest) -> AsyncIterator[LiveServer]:
    """`live_app` with overrides from @pytest.mark.settings(...)."""
    marker = request.node.get_closest_marker("settings")
    async with live_app(**(dict(marker.kwargs) if marker else {})) as live:
        yield live


async def wait_until(predicate: Any, timeout_s: float = 5.0, interval_s: float = 0.02) -> None:
    """Wait for `predicate()` to be true; fail the test with a clear message otherwise."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(interval_s)
