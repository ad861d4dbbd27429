"""The embedded local backend's connection over a real WebSocket (websockets on 127.0.0.1).

Pins: the models it serves and the /v1/realtime default; that an unknown model fails before any
send; that every malformed event gets an `error` and leaves the session usable; `loopback`
mirroring each append at once; and that a client disconnect ends the session and its tasks.
Turns, session.update and items have their own modules (tests/test_localmodel_*.py).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from localmodel.models import DEFAULT_MODEL, LOCAL_MODELS, UnknownModelError
from localmodel.server import serve_realtime
from protocol.audio import BYTES_PER_MS

from .local_backend import b64, realtime, serve_backend, speech_sample, start_long_response, types
from .speech import chunks, tone

pytestmark = pytest.mark.integration


def test_local_models_and_the_default_one() -> None:
    assert LOCAL_MODELS == ("echo", "loopback", "assistant")
    # /v1/realtime serves the offline assistant when the URL names no model.
    assert DEFAULT_MODEL == "assistant"


async def test_serve_realtime_unknown_model_raises_before_sending() -> None:
    raised: list[Exception] = []

    async def handler(connection: ServerConnection) -> None:
        try:
            await serve_realtime(connection, "no-such-model")
        except UnknownModelError as exc:
            raised.append(exc)
            await connection.close(4004, "unknown model")

    async with serve(handler, "127.0.0.1", 0) as server:
        host, port = next(iter(server.sockets)).getsockname()[:2]
        async with connect(f"ws://{host}:{port}/v1/realtime") as websocket:
            with pytest.raises(ConnectionClosed) as closed:
                await websocket.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4004
    assert len(raised) == 1 and isinstance(raised[0], ValueError)
    assert "no-such-model" in str(raised[0])


OVERSIZED = "A" * (15 * 1024 * 1024 + 4)


@pytest.mark.parametrize(
    ("message", "code", "param"),
    [
        ("this is not json", "invalid_json", None),
        (b'{"type": "input_audio_buffer.clear"}', "binary_message_unsupported", None),
        ("[1, 2, 3]", "invalid_event", None),
        ('{"type": "no.such.event", "event_id": "client-1"}', "invalid_value", "type"),
        (
            '{"type": "input_audio_buffer.append", "audio": "@@not base64@@",'
            ' "event_id": "client-1"}',
            "invalid_base64",
            "audio",
        ),
        (
            json.dumps(
                {
                    "type": "input_audio_buffer.append",
                    "audio": b64(b"\x01\x02\x03"),
                    "event_id": "client-1",
                }
            ),
            "invalid_audio_length",
            "audio",
        ),
        (
            json.dumps(
                {"type": "input_audio_buffer.append", "audio": OVERSIZED, "event_id": "client-1"}
            ),
            "audio_too_large",
            "audio",
        ),
    ],
    ids=[
        "non-json",
        "binary",
        "non-object",
        "unknown-type",
        "bad-base64",
        "odd-length",
        "oversized",
    ],
)
@pytest.mark.parametrize("model", ["echo", "loopback"])
async def test_bad_input_gets_error_and_session_stays_usable(
    model: str, message: str | bytes, code: str, param: str | None
) -> None:
    async with serve_backend() as backend, realtime(backend, model) as client:
        await client.websocket.send(message)
        error = (await client.recv_until("error"))[-1]["error"]
        cleared = await client.roundtrip(
            {"type": "input_audio_buffer.clear", "event_id": "next"},
            "input_audio_buffer.cleared",
        )
    assert error["type"] == "invalid_request_error"
    assert (error["code"], error["param"]) == (code, param)
    assert error["message"]
    assert error["event_id"] == ("client-1" if "client-1" in str(message) else None)
    assert cleared["type"] == "input_audio_buffer.cleared"


async def test_loopback_mirrors_each_append_at_once(tmp_path: Path) -> None:
    speech_pcm = speech_sample(tmp_path)
    async with serve_backend() as backend, realtime(backend, "loopback") as client:
        assert client.session["session"]["turn_detection"] is None
        opening = [await client.recv() for _ in range(4)]
        assert types(opening) == [
            "response.created",
            "response.output_item.added",
            "conversation.item.created",
            "response.content_part.added",
        ]
        response_id = opening[0]["response"]["id"]
        item_id = opening[1]["item"]["id"]
        for chunk in chunks(speech_pcm[: 1000 * BYTES_PER_MS]):
            audio = b64(chunk)
            await client.send({"type": "input_audio_buffer.append", "audio": audio})
            delta = await client.recv(timeout_s=1.0)
            assert delta["type"] == "response.audio.delta"
            assert (delta["response_id"], delta["item_id"]) == (response_id, item_id)
            assert (delta["output_index"], delta["content_index"]) == (0, 0)
            assert delta["delta"] == audio
        truncated = await client.roundtrip(
            {
                "type": "conversation.item.truncate",
                "item_id": item_id,
                "content_index": 0,
                "audio_end_ms": 1000,
            },
            "conversation.item.truncated",
        )
        assert truncated["audio_end_ms"] == 1000
        # Asking for server VAD changes nothing: loopback never takes turns.
        updated = await client.roundtrip(
            {"type": "session.update", "session": {"type": "realtime"}}, "session.updated"
        )
        assert updated["session"]["audio"]["input"]["turn_detection"] is None
        await client.send(
            {"type": "input_audio_buffer.append", "audio": b64(tone(20, -20.0, 220.0))}
        )
        delta = await client.recv(timeout_s=1.0)
    assert delta["type"] == "response.output_audio.delta"
    assert delta["delta"] == b64(tone(20, -20.0, 220.0))


async def test_client_disconnect_mid_response_ends_the_session() -> None:
    async with serve_backend() as backend:
        async with realtime(backend, "echo") as client:
            await start_long_response(client)
        await asyncio.wait_for(backend.changed.wait(), 5.0)
        assert backend.ended == [None]
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("localmodel-")]
