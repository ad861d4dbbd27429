"""Deploys that drop no call: `voice-relay serve` drains on SIGTERM (web/server.py).

- after SIGTERM `/readyz` is 503 `draining` at once, `/healthz` stays 200 and a new
  POST /api/sessions is refused with 503 `draining` and Retry-After;
- the running call's audio keeps flowing, then after VOICE_RELAY_DRAIN_S it ends with `ended`
  reason `server_draining` and the process exits 0;
- a call that ends by itself during the drain lets the process exit at once, and a second
  signal ends every call at once;
- the page (static/rtc-client.js) reconnects on `server_draining` (tests/js/drain.test.mjs).
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from benchmarks.fleet import Server, child_env, free_port, spawn, stop, wait_listening
from protocol.audio import PCM_RATE_HZ

from .conftest import wait_until
from .media import LOOPBACK, ClientPeer, SpeechTrack
from .speech import tone

pytestmark = pytest.mark.integration

DRAIN_S = 3.0
LONG_DRAIN_S = 60.0  # longer than any wait below: an exit before it did not wait for it
JS_CASES = Path(__file__).resolve().parent / "js" / "drain.test.mjs"


@asynccontextmanager
async def relay(tmp_path: Path, drain_s: float) -> AsyncIterator[tuple[Server, httpx.AsyncClient]]:
    port = free_port()
    env = child_env(
        VOICE_RELAY_BACKEND="local",
        VOICE_RELAY_MODEL="loopback",
        VOICE_RELAY_DRAIN_S=str(drain_s),
        VOICE_RELAY_DATA_DIR=str(tmp_path),
    )
    cmd = [sys.executable, "-m", "web.cli", "serve", "--host", LOOPBACK, "--port", str(port)]
    server = Server("relay", "relay", await spawn(cmd, env), f"http://{LOOPBACK}:{port}")
    try:
        await wait_listening(server, port)
        async with httpx.AsyncClient(base_url=server.url, timeout=5) as http:
            yield server, http
    finally:
        await stop(server.process)


async def start_call(http: httpx.AsyncClient) -> ClientPeer:
    client = ClientPeer(SpeechTrack(tone(60_000, hz=600.0), leading_silence_s=0.2))
    await client.connect(http)
    await wait_until(lambda: len(client.received) > PCM_RATE_HZ, timeout_s=10)  # 0.5 s of audio
    return client


async def post_offer(http: httpx.AsyncClient) -> httpx.Response:
    peer = ClientPeer()
    try:
        offer = await peer.offer()
        return await http.post("/api/sessions", json={"sdp": offer.sdp, "type": offer.type})
    finally:
        await peer.close()


def ended_reasons(client: ClientPeer) -> list[str]:
    return [event["reason"] for event in client.events_of("ended")]


async def test_sigterm_drains_then_ends_the_call_with_the_drain_reason(tmp_path: Path) -> None:
    async with relay(tmp_path, DRAIN_S) as (server, http):
        assert (await http.get("/readyz")).status_code == 200
        client = await start_call(http)
        try:
            loop = asyncio.get_running_loop()
            server.process.send_signal(signal.SIGTERM)
            signalled = loop.time()
            ready = await http.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["error"]["code"] == "draining"
            assert (await http.get("/healthz")).status_code == 200
            refused = await post_offer(http)
            assert refused.status_code == 503
            assert refused.json()["error"]["code"] == "draining"
            assert int(refused.headers["Retry-After"]) > 0

            before = len(client.received)
            await asyncio.sleep(1.0)
            # About a second of audio more (2 bytes a sample): the call goes on.
            assert len(client.received) - before > PCM_RATE_HZ
            assert ended_reasons(client) == []

            await wait_until(lambda: client.events_of("ended"), timeout_s=DRAIN_S + 10)
            assert ended_reasons(client) == ["server_draining"]
            assert loop.time() - signalled >= DRAIN_S - 0.5
            assert await asyncio.wait_for(server.process.wait(), 10) == 0
        finally:
            await client.close()


async def test_a_call_ending_during_the_drain_lets_the_process_exit(tmp_path: Path) -> None:
    async with relay(tmp_path, LONG_DRAIN_S) as (server, http):
        client = await start_call(http)
        try:
            server.process.send_signal(signal.SIGTERM)
            assert (await http.get("/readyz")).status_code == 503
            await asyncio.sleep(0.5)
            assert server.process.returncode is None  # a call is running: the drain waits
            hangup = await http.delete(f"/api/sessions/{client.session_id}")
            assert hangup.status_code == 204
            assert await asyncio.wait_for(server.process.wait(), 10) == 0
            assert "server_draining" not in ended_reasons(client)
        finally:
            await client.close()


async def test_a_second_signal_ends_every_call_at_once(tmp_path: Path) -> None:
    async with relay(tmp_path, LONG_DRAIN_S) as (server, http):
        client = await start_call(http)
        try:
            server.process.send_signal(signal.SIGTERM)
            assert (await http.get("/readyz")).status_code == 503
            server.process.send_signal(signal.SIGINT)
            await wait_until(lambda: client.events_of("ended"), timeout_s=10)
            assert ended_reasons(client) == ["server_draining"]
            assert await asyncio.wait_for(server.process.wait(), 10) == 0
        finally:
            await client.close()


def test_the_page_reconnects_on_the_drain_reason() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("needs Node")
    result = subprocess.run(
        [node, "--test", str(JS_CASES)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "# fail 0" in result.stdout and "# pass 0" not in result.stdout
