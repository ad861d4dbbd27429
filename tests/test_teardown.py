"""Teardown: every way a session ends frees its peer, its backend socket and its tasks once.

Pins: a client killed without hanging up (ICE consent fails), a backend socket that drops, the
maximum duration, and server shutdown; other sessions carry on.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
import threading

import pytest
from aiortc import RTCPeerConnection

from relay import Session

from .conftest import LiveServer, live_app, wait_until
from .media import ClientPeer, SpeechTrack
from .realtime_server import recording_server
from .speech import tone

pytestmark = pytest.mark.integration

SUMMARY_COUNTERS = (
    "playout_late_frames",
    "playout_dropped_bytes",
    "backend_dropped_audio_bytes",
    "uplink_lost_packets",
    "uplink_decode_errors",
)


def leftovers(session: Session) -> list[str]:
    """Anything of `session` still alive: tasks named after it, its open peer connection."""
    alive = [
        t.get_name() for t in asyncio.all_tasks() if session.id in t.get_name() and not t.done()
    ]
    if session.pc.connectionState != "closed":
        alive.append(f"peer connection {session.pc.connectionState}")
    return alive


def open_peer_connections() -> int:
    gc.collect()
    return sum(
        1
        for o in gc.get_objects()
        if isinstance(o, RTCPeerConnection) and o.connectionState != "closed"
    )


@pytest.mark.usefixtures("short_consent_timers")
async def test_teardown_client_vanishes_without_hanging_up(live_server: LiveServer) -> None:
    survivor = ClientPeer(SpeechTrack(tone(1000)))
    async with live_server.http() as http:
        await survivor.connect(http)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.vanishing_client",
        live_server.url,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 20)
        session = live_server.registry.get(line.decode().strip())
        process.send_signal(signal.SIGKILL)
        await process.wait()
        await wait_until(lambda: session.id not in live_server.registry, timeout_s=15)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert session.reason in ("ice_failed", "peer_closed")
    assert session.id not in live_server.registry
    await wait_until(lambda: not leftovers(session))
    # The other conversation is untouched.
    assert len(live_server.registry) == 1
    assert survivor.pc.connectionState == "connected"
    await survivor.close()


async def test_teardown_backend_drop_ends_only_that_session() -> None:
    async with (
        recording_server("stepfun") as backend,
        live_app(backend="stepfun", backend_url=backend.url, stepfun_api_key="sk-x") as live,
        live.http() as http,
    ):
        first, second = ClientPeer(), ClientPeer()
        await first.connect(http)
        await backend.wait_for("session.update")
        first_socket = backend.connection
        await second.connect(http)
        await backend.wait_for("session.update", count=2)
        session = live.registry.get(first.session_id or "")
        assert first_socket is not None
        first_socket.transport.abort()  # the backend vanishes, no close frame
        await wait_until(lambda: session.id not in live.registry)
        assert session.reason == "backend_closed"
        await wait_until(lambda: not leftovers(session))
        await wait_until(lambda: first.pc.connectionState == "closed")
        assert list(live.registry._sessions) == [second.session_id]
        await first.close()
        await second.close()


@pytest.mark.settings(max_session_s=1.0)
async def test_teardown_at_maximum_duration(
    live_server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="relay.session")
    client = ClientPeer()
    async with live_server.http() as http:
        await client.connect(http)
    session = live_server.registry.get(client.session_id or "")
    await wait_until(lambda: session.id not in live_server.registry, timeout_s=5)
    assert session.reason == "max_duration"
    assert not leftovers(session)
    # With no session left, the process gives freed memory back (relay.memory), once.
    await wait_until(lambda: live_server.registry.idle_trims == 1, timeout_s=5)
    assert {"type": "ended", "reason": "max_duration"} in client.events
    await client.close()
    # One summary line, with what the media path counted.
    (summary,) = [r.getMessage() for r in caplog.records if " ended reason=" in r.getMessage()]
    fields = dict(f.split("=", 1) for f in summary.split()[2:])
    assert fields["reason"] == "max_duration"
    for counter in SUMMARY_COUNTERS:
        assert int(fields[counter]) >= 0, counter


async def test_teardown_on_server_shutdown_frees_every_session() -> None:
    clients = [ClientPeer(), ClientPeer()]
    async with live_app() as live, live.http() as http:
        for client in clients:
            await client.connect(http)
        sessions = [live.registry.get(c.session_id or "") for c in clients]
    assert all(s.reason == "server_shutdown" for s in sessions)
    assert all(not leftovers(s) for s in sessions)
    for client in clients:
        await client.close()
    assert open_peer_connections() == 0
    # aiortc's decoder threads (idle beside relay.decoding's LoopDecoder) ended with them.
    assert [t.name for t in threading.enumerate() if t.name == "audio-decoder"] == []
