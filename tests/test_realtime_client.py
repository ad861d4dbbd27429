"""RealtimeClient: bounded outbox, merged appends, plain errors, and the key kept out of logs."""

from __future__ import annotations

import asyncio
import base64
import logging
from typing import Any

import pytest

from protocol.events import ServerEvent
from relay.backends import BackendConfig, RealtimeClient, dialect_for
from relay.backends.client import MAX_PENDING_AUDIO_BYTES
from relay.errors import BackendError

from .local_backend import serve_backend
from .realtime_server import recording_server

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
