"""The app's /v1/realtime endpoint over real WebSockets (uvicorn on 127.0.0.1).

Pins: a binary frame gets an `error` and the session goes on; a foreign browser Origin is
refused; a set token is required, and listening beyond loopback without one the endpoint serves
only the relay's own sessions (and `voice-relay backend` will not start); a relay sends the token
to a separate backend by itself; outside connections count against VOICE_RELAY_MAX_SESSIONS with
the relay's sessions, each relay session once; audio faster than twice real time (after a burst)
is refused chunk by chunk; and, from `voice-relay backend` in a child process, permessage-deflate
declined, a compressed bomb stopped at the message bound, and compressed frames refused unread.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import Frame, Opcode

from benchmarks.fleet import Server, child_env, free_port, spawn, stop, wait_listening
from localmodel.append_limit import AppendBudget, AppendLimit
from localmodel.client_events import ClientEventError
from protocol.audio import BYTES_PER_MS
from web.cli import create_backend_app, main
from web.realtime_guard import APPEND_LIMIT, MAX_MESSAGE_BYTES

from .conftest import LiveServer, live_app, make_settings, wait_until
from .media import LOOPBACK, ClientPeer, SpeechTrack
from .speech import tone

pytestmark = pytest.mark.integration

Event = dict[str, Any]


def endpoint(live: LiveServer, model: str = "loopback") -> str:
    return f"{live.url.replace('http', 'ws', 1)}/v1/realtime?model={model}"


async def recv_event(ws: ClientConnection, timeout_s: float = 5.0) -> Event:
    event: Event = json.loads(await asyncio.wait_for(ws.recv(), timeout_s))
    return event


async def next_of(ws: ClientConnection, kind: str, timeout_s: float = 5.0) -> Event:
    async with asyncio.timeout(timeout_s):
        while (event := await recv_event(ws))["type"] != kind:
            pass
    return event


@contextlib.asynccontextmanager
async def session(url: str, **options: Any) -> AsyncIterator[ClientConnection]:
    async with connect(url, **options) as ws:
        assert (await recv_event(ws))["type"] == "session.created"
        yield ws


async def refusal(url: str, **options: Any) -> tuple[int, dict[str, str], Event]:
    """The HTTP status, headers and JSON error of a refused handshake."""
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url, **options):
            pass
    response = refused.value.response
    return response.status_code, dict(response.headers), json.loads(response.body)["error"]


async def answers(ws: ClientConnection, count: int) -> list[Event]:
    """The next `count` audio deltas and errors (what loopback answers appends with)."""
    found: list[Event] = []
    while len(found) < count:
        event = await recv_event(ws)
        if event["type"] in ("response.audio.delta", "error"):
            found.append(event)
    return found


async def until_closed(ws: ClientConnection, timeout_s: float = 10.0) -> None:
    async with asyncio.timeout(timeout_s):
        while True:
            await ws.recv()


def append(pcm: bytes) -> str:
    audio = base64.b64encode(pcm).decode()
    return json.dumps({"type": "input_audio_buffer.append", "audio": audio})


async def test_binary_frame_gets_an_error_and_the_session_stays_usable() -> None:
    async with live_app() as live, session(endpoint(live, "echo")) as ws:
        await ws.send(b"\x00\xff\x10 not text")
        first = (await next_of(ws, "error"))["error"]
        await ws.send(b'{"type": "input_audio_buffer.clear"}')  # JSON, but in a binary frame
        second = (await next_of(ws, "error"))["error"]
        await ws.send(json.dumps({"type": "input_audio_buffer.clear"}))
        cleared = await next_of(ws, "input_audio_buffer.cleared")
    for error in (first, second):
        assert (error["type"], error["code"]) == (
            "invalid_request_error",
            "binary_message_unsupported",
        )
        assert "text" in error["message"]
    assert cleared["type"] == "input_audio_buffer.cleared"


async def test_a_foreign_browser_origin_is_refused() -> None:
    async with live_app() as live:
        status, _, error = await refusal(endpoint(live), origin="https://evil.example")
        assert (status, error["code"]) == (403, "origin_not_allowed")
        assert "https://evil.example" in error["message"]
        # The server's own origin, and clients that send none (not browsers), are served.
        async with session(endpoint(live), origin=live.url), session(endpoint(live)):
            pass


async def test_a_set_token_is_required_and_accepted() -> None:
    async with live_app(realtime_token="s3cret-token") as live:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret-token"}):
            status, response_headers, error = await refusal(
                endpoint(live), additional_headers=headers
            )
            assert (status, error["code"]) == (401, "unauthorized")
            assert response_headers["www-authenticate"] == "Bearer"
            assert "s3cret-token" not in json.dumps(error)
        bearer = {"Authorization": "Bearer s3cret-token"}
        async with session(endpoint(live), additional_headers=bearer) as ws:
            await ws.send(append(tone(40)))
            assert (await next_of(ws, "response.audio.delta"))["delta"]


async def relay_session_hears_itself(live: LiveServer, client: ClientPeer) -> None:
    """A relay conversation on the loopback model: its own voice comes back."""
    async with live.http() as http:
        await client.connect(http)
    await wait_until(lambda: len(client.received) > 24_000, timeout_s=10)


async def test_beyond_loopback_without_a_token_only_the_relay_gets_in() -> None:
    client = ClientPeer(SpeechTrack(tone(3000, hz=600.0), leading_silence_s=0.2))
    try:
        async with live_app(host="0.0.0.0", model="loopback") as live:
            status, _, error = await refusal(endpoint(live))
            assert (status, error["code"]) == (403, "realtime_token_required")
            assert "VOICE_RELAY_REALTIME_TOKEN" in error["message"]
            await relay_session_hears_itself(live, client)
    finally:
        await client.close()


async def test_a_relay_sends_the_token_to_a_separate_backend() -> None:
    sock = socket.socket()
    sock.bind((LOOPBACK, 0))
    port = sock.getsockname()[1]
    settings = make_settings(port=port, realtime_token="backend-token")
    server = uvicorn.Server(uvicorn.Config(create_backend_app(settings), log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    client = ClientPeer(SpeechTrack(tone(3000, hz=600.0), leading_silence_s=0.2))
    backend_url = f"ws://{LOOPBACK}:{port}/v1/realtime"
    try:
        await wait_until(lambda: server.started or task.done())
        status, _, error = await refusal(f"{backend_url}?model=loopback")
        assert (status, error["code"]) == (401, "unauthorized")
        relay = live_app(model="loopback", backend_url=backend_url, realtime_token="backend-token")
        async with relay as live:
            await relay_session_hears_itself(live, client)
    finally:
        await client.close()
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()


def test_cli_backend_beyond_loopback_needs_a_token(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VOICE_RELAY_REALTIME_TOKEN", raising=False)
    assert main(["backend", "--host", "0.0.0.0"]) == 2
    assert "VOICE_RELAY_REALTIME_TOKEN" in capsys.readouterr().err


async def test_outside_connections_count_against_max_sessions() -> None:
    async with live_app(max_sessions=3) as live, contextlib.AsyncExitStack() as stack:
        held = [await stack.enter_async_context(session(endpoint(live))) for _ in range(3)]
        status, headers, error = await refusal(endpoint(live))
        assert (status, error["code"]) == (503, "at_capacity")
        assert int(headers["retry-after"]) > 0
        await held[0].close()
        await wait_until(lambda: live.app.state.realtime_guard.outside == 2)
        async with session(endpoint(live)):
            pass


async def test_outside_connections_count_against_relay_sessions_too() -> None:
    client = ClientPeer()
    try:
        async with live_app(max_sessions=1) as live, session(endpoint(live)):
            offer = await client.offer()
            async with live.http() as http:
                body = {"sdp": offer.sdp, "type": offer.type}
                response = await http.post("/api/sessions", json=body)
            assert response.status_code == 503, response.text
            assert response.json()["error"]["code"] == "at_capacity"
            assert len(live.registry) == 0
    finally:
        await client.close()


async def test_a_relay_session_and_its_backend_connection_count_once() -> None:
    client = ClientPeer(SpeechTrack(tone(3000, hz=600.0), leading_silence_s=0.2))
    try:
        async with live_app(max_sessions=2, model="loopback") as live:
            await relay_session_hears_itself(live, client)
            assert len(live.registry) == 1
            async with session(endpoint(live)):
                status, _, error = await refusal(endpoint(live))
            assert (status, error["code"]) == (503, "at_capacity")
    finally:
        await client.close()


async def test_audio_faster_than_twice_real_time_is_refused_chunk_by_chunk() -> None:
    chunk = tone(200)
    async with live_app() as live, session(endpoint(live)) as ws:
        started = time.monotonic()
        for _ in range(40):  # 8 s of audio at once
            await ws.send(append(chunk))
        first = await answers(ws, 40)
        elapsed_ms = (time.monotonic() - started) * 1000
        accepted = [a for a in first if a["type"] == "response.audio.delta"]
        refused = [a["error"] for a in first if a["type"] == "error"]
        await asyncio.sleep(1.0)  # earns 2 s of audio
        for _ in range(5):
            await ws.send(append(chunk))
        later = await answers(ws, 5)
    assert len(accepted) + len(refused) == 40
    allowed_ms = APPEND_LIMIT.burst_ms + APPEND_LIMIT.speed * elapsed_ms
    assert APPEND_LIMIT.burst_ms <= len(accepted) * 200 <= allowed_ms
    assert refused and {e["code"] for e in refused} == {"input_audio_rate_exceeded"}
    assert [e["type"] for e in later] == ["response.audio.delta"] * 5


def test_append_budget_allows_a_burst_then_twice_real_time() -> None:
    now = [0.0]
    budget = AppendBudget(AppendLimit(speed=2.0, burst_ms=1000), clock=lambda: now[0])
    chars_per_ms = BYTES_PER_MS * 4 // 3
    budget.charge(1000 * chars_per_ms)
    with pytest.raises(ClientEventError) as refused:
        budget.charge(10 * chars_per_ms)
    assert refused.value.code == "input_audio_rate_exceeded"
    now[0] = 0.25  # a quarter second earns half a second of audio, and no more
    budget.charge(500 * chars_per_ms)
    with pytest.raises(ClientEventError):
        budget.charge(10 * chars_per_ms)
    now[0] = 100.0  # idle time refills the burst, never beyond it
    budget.charge(1000 * chars_per_ms)
    with pytest.raises(ClientEventError):
        budget.charge(10 * chars_per_ms)


# -- the message bound, from the CLI's own server ---------------------------------------------


def peak_rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


@contextlib.asynccontextmanager
async def cli_backend() -> AsyncIterator[tuple[Server, str]]:
    port = free_port()
    cmd = [sys.executable, "-m", "web.cli", "backend", "--port", str(port)]
    process = await spawn(cmd, child_env())
    url = f"ws://{LOOPBACK}:{port}/v1/realtime?model=loopback"
    server = Server("voice-relay backend", "backend", process, url)
    try:
        await wait_listening(server, port)
        yield server, url
    finally:
        await stop(process)


async def test_a_deflate_bomb_cannot_allocate_beyond_the_message_bound() -> None:
    # Each message is 15 MiB of base64 that deflate squeezes into ~15 KB: were compression
    # negotiated, one TCP read would inflate into many full-size messages at once.
    bomb = '{"type":"input_audio_buffer.append","audio":"' + "A" * (15 << 20) + '"}'
    async with cli_backend() as (server, url):
        async with session(url, compression="deflate", max_size=None) as ws:
            assert ws.protocol.extensions == []  # the offer of permessage-deflate is declined
            await ws.send(append(tone(40)))
            await next_of(ws, "response.audio.delta")
        baseline = peak_rss_mib(server.pid)
        async with session(url, compression="deflate", max_size=None) as ws:
            with contextlib.suppress(ConnectionClosed):
                for _ in range(24):
                    await ws.send(bomb)
            with pytest.raises(ConnectionClosed) as closed:
                await until_closed(ws)
        growth = peak_rss_mib(server.pid) - baseline
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009  # too big
        assert growth < 4 * MAX_MESSAGE_BYTES / (1 << 20) + 16, f"peak RSS grew {growth:.0f} MiB"
        async with session(url):  # and it still serves
            pass


async def test_a_compressed_frame_without_negotiation_is_refused_unread() -> None:
    wire = bytearray(Frame(Opcode.TEXT, os.urandom(64)).serialize(mask=True, extensions=[]))
    wire[0] |= 0x40  # RSV1: how a permessage-deflate frame is marked
    async with cli_backend() as (_, url), session(url, compression=None) as ws:
        ws.transport.write(bytes(wire))
        with pytest.raises(ConnectionClosed) as closed:
            await until_closed(ws)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1002  # protocol error
