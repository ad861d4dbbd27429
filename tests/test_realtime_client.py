"""RealtimeClient: bounded outbox, merged appends, plain errors, and the key kept out of logs.

Also pins: a backend that stops reading keeps the outbox bounded and is given up on (an error,
not a hang); an error before `session.created` is a BackendError without the key, and closes
the socket; the local `loopback` model starts a new response after a `response.cancel`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from typing import Any

import pytest

from protocol.events import ServerEvent
from relay.backends import BackendConfig, RealtimeClient, dialect_for
from relay.backends import client as realtime_client
from relay.backends.client import MAX_PENDING_AUDIO_BYTES, MAX_PENDING_EVENTS
from relay.errors import BackendError

from .local_backend import serve_backend
from .realtime_server import deaf, hostile_server, recording_server

pytestmark = pytest.mark.integration


async def test_client_keeps_the_key_out_of_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with recording_server("stepfun") as server:
        config = BackendConfig(
            "stepfun", server.url, "stepaudio-2.5-realtime", api_key="sk-secret-42"
        )
        client = RealtimeClient(config, dialect_for("stepfun"))
        await client.connect()
        await server.wait_for("session.update")
        await client.close()
    assert server.headers[0]["Authorization"] == "Bearer sk-secret-42"
    # The test's own server logs the header it received; everything on the relay's side must not.
    relay_side = [r for r in caplog.records if not r.name.startswith("websockets.server")]
    assert logging.getLogger("relay.backends.wire").getEffectiveLevel() == logging.INFO
    assert not [r for r in relay_side if "sk-secret-42" in r.getMessage()]
    assert "sk-secret-42" not in repr(config)


async def test_client_merges_queued_audio_and_drops_oldest_when_full() -> None:
    async with recording_server("stepfun") as server:
        client = RealtimeClient(BackendConfig("local", server.url, "echo"), dialect_for("local"))
        # Before the socket opens everything queues; the oldest audio goes beyond the bound.
        chunks = [bytes([i % 256]) * 960 for i in range(200)]
        for chunk in chunks:
            client.append_audio(chunk)
        assert client.dropped_audio_bytes == 200 * 960 - MAX_PENDING_AUDIO_BYTES
        await client.connect()
        await server.wait_for_audio_ms(2000)
        await client.close()
    sizes = server.appended_bytes()
    assert all(size == 1920 for size in sizes)  # merged into 40 ms appends
    first = base64.b64decode(server.of_type("input_audio_buffer.append")[0]["audio"])
    assert first[0] == 100  # chunks 0..99 were the oldest and were dropped


async def test_client_refused_connection_is_a_backend_error() -> None:
    client = RealtimeClient(
        BackendConfig("local", "ws://127.0.0.1:9/v1/realtime", "echo"), dialect_for("local")
    )
    with pytest.raises(BackendError, match="unreachable"):
        await asyncio.wait_for(client.connect(), 15)


async def test_client_takes_the_vad_silence_from_the_session_the_local_server_reports() -> None:
    async with serve_backend() as backend:
        for configured, reported in [(None, 500), (650, 650)]:
            config = BackendConfig("local", backend.url, "echo", silence_duration_ms=configured)
            client = RealtimeClient(config, dialect_for("local"))
            await client.connect()
            assert client.silence_ms == 500  # echo's own default, in `session.created`
            async for event in client.events():
                if event["type"] == ServerEvent.SESSION_UPDATED:
                    break
            assert client.silence_ms == reported
            await client.close()


async def test_local_dialect_sends_only_the_vad_timings_configured() -> None:
    async with recording_server("local") as server:
        client = RealtimeClient(BackendConfig("local", server.url, "echo"), dialect_for("local"))
        await client.connect()
        update = await server.wait_for("session.update")
        await client.close()
    assert update["session"]["turn_detection"] == {"type": "server_vad"}


@pytest.mark.parametrize(
    ("created", "silence_ms"),
    [
        ({"audio": {"input": {"turn_detection": {"silence_duration_ms": 350}}}}, 350),  # GA
        ({"audio": {"input": {"turn_detection": None}}}, 500),  # none: OpenAI's default
    ],
)
async def test_client_reads_the_ga_session_shape(created: dict[str, Any], silence_ms: int) -> None:
    async with recording_server("openai", created_session=created, echo_updates=False) as server:
        config = BackendConfig("openai", server.url, "gpt-realtime", api_key="sk-x")
        client = RealtimeClient(config, dialect_for("openai"))
        await client.connect()
        assert client.silence_ms == silence_ms
        await client.close()


async def test_client_gives_up_on_a_backend_that_stops_reading(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(realtime_client, "SEND_STALL_TIMEOUT_S", 1.0)
    async with hostile_server(deaf) as url:
        client = RealtimeClient(BackendConfig("local", url, "echo"), dialect_for("local"))
        await client.connect()
        assert client.ready

        async def talk() -> None:  # far faster than real time, so the socket fills soon
            while True:
                client.append_audio(bytes(9600))
                client.send({"type": "input_audio_buffer.commit"})
                events, audio = client.backlog
                assert events <= MAX_PENDING_EVENTS and audio <= MAX_PENDING_AUDIO_BYTES
                await asyncio.sleep(0.002)

        talking = asyncio.create_task(talk())
        with pytest.raises(BackendError, match="stopped reading"):
            async with asyncio.timeout(30):
                async for _ in client.events():
                    pass
        talking.cancel()
        await asyncio.gather(talking, return_exceptions=True)
        assert client.dropped_audio_bytes > 0 and client.dropped_events > 0
        async with asyncio.timeout(realtime_client.CLOSE_TIMEOUT_S + 1):
            await client.close()


async def test_client_error_before_the_session_is_redacted_and_closes_the_socket() -> None:
    async def refuse(ws: Any) -> None:
        auth = ws.request.headers["Authorization"]
        await ws.send(json.dumps({"type": "error", "error": {"message": f"no: {auth}"}}))
        await ws.wait_closed()

    async with hostile_server(refuse) as url:
        config = BackendConfig("openai", url, "gpt-realtime", api_key="sk-echoed-99")
        client = RealtimeClient(config, dialect_for("openai"))
        with pytest.raises(BackendError) as raised:
            await client.connect()
    assert str(raised.value) == "backend error: no: Bearer [redacted]"
    assert not client.ready and client.backlog == (0, 0)


async def test_loopback_starts_a_new_response_after_a_cancel() -> None:
    async with serve_backend() as backend:
        client = RealtimeClient(
            BackendConfig("local", backend.url, "loopback"), dialect_for("local")
        )
        await client.connect()
        events = client.events()
        seen: list[dict[str, Any]] = []

        async def until(kind: str) -> dict[str, Any]:
            async with asyncio.timeout(5):
                async for event in events:
                    seen.append(event)
                    if event["type"] == kind:
                        return event
            raise AssertionError(f"no {kind}")

        first = (await until("response.created"))["response"]["id"]
        client.append_audio(bytes(960))
        assert (await until("response.audio.delta"))["response_id"] == first
        client.send({"type": "response.cancel"})
        done = await until("response.done")
        assert done["response"]["id"] == first and done["response"]["status"] == "cancelled"
        client.append_audio(bytes(960))
        second = (await until("response.created"))["response"]["id"]
        assert second != first
        assert (await until("response.audio.delta"))["response_id"] == second
        assert not [e for e in seen if e["type"] == "error"]
        await client.close()
