"""The `voice-relay` command.

- `voice-relay backend` serves only /v1/realtime on its own port: a realtime client gets
  `session.created` and, with model `loopback`, each append back as an audio delta;
- a relay reaches such a process through VOICE_RELAY_BACKEND_URL and its audio comes back;
- invalid settings end `serve` with exit status 2 instead of a traceback.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from websockets.asyncio.client import ClientConnection, connect

from benchmarks.fleet import Server, free_port, stop, wait_listening
from web.cli import create_backend_app, main

from .conftest import LOOPBACK, live_app, wait_until
from .media import ClientPeer, SpeechTrack, envelope
from .speech import tone

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent


async def next_of(ws: ClientConnection, kind: str, timeout_s: float = 5.0) -> dict[str, Any]:
    async with asyncio.timeout(timeout_s):
        while True:
            event = json.loads(await ws.recv())
            if event.get("type") == kind:
                return dict(event)


@asynccontextmanager
async def backend_process(port: int) -> AsyncIterator[asyncio.subprocess.Process]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "web.cli", "backend", "--port", str(port),
        cwd=ROOT,
        env={**os.environ, "VOICE_RELAY_LOG_LEVEL": "warning"},
    )  # fmt: skip
    try:
        yield process
    finally:
        await stop(process)


async def test_cli_backend_serves_only_the_realtime_endpoint() -> None:
    port = free_port()
    async with backend_process(port) as process:
        url = f"ws://{LOOPBACK}:{port}/v1/realtime?model=loopback"
        await wait_listening(Server("voice-relay backend", "backend", process, url), port)
        async with connect(url) as ws:
            created = await next_of(ws, "session.created")
            assert created["session"]["model"] == "loopback"
            audio = base64.b64encode(tone(40)).decode()
            await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": audio}))
            delta = await next_of(ws, "response.audio.delta")
            assert delta["delta"] == audio
        async with httpx.AsyncClient(base_url=f"http://{LOOPBACK}:{port}") as http:
            assert (await http.post("/api/sessions", json={})).status_code == 404
            assert (await http.get("/")).status_code == 404
        process.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal as its exit status.
        assert await asyncio.wait_for(process.wait(), 10) in (0, -signal.SIGTERM)


async def test_cli_relay_reaches_a_separate_backend_through_backend_url() -> None:
    sock = socket.socket()
    sock.bind((LOOPBACK, 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_backend_app(), log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    client = ClientPeer(SpeechTrack(tone(3000, hz=600.0), leading_silence_s=0.2))
    try:
        await wait_until(lambda: server.started or task.done())
        backend_url = f"ws://{LOOPBACK}:{port}/v1/realtime"
        async with live_app(model="loopback", backend_url=backend_url) as live, live.http() as http:
            await client.connect(http)
            await wait_until(lambda: len(client.received) > 48_000, timeout_s=10)
            await wait_until(lambda: envelope(bytes(client.received[-24_000:])).max() > 0.05)
            assert (await http.delete(f"/api/sessions/{client.session_id}")).status_code == 204
    finally:
        await client.close()
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()


def test_cli_serve_with_invalid_settings_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--port", "70000"]) == 2
    assert "invalid settings" in capsys.readouterr().err
