"""The embedded local backend over a real WebSocket (websockets server and client on 127.0.0.1).

Pins: the server-VAD turn's event order and that `echo` returns exactly the utterance it cut;
manual turns with VAD off; response.cancel and barge-in stopping deltas at once and closing the
response as cancelled; truncate limits; the GA dialect taking over after a GA session.update;
that every malformed event gets an `error` and leaves the session usable; `loopback` mirroring
each append at once; bounded input audio; and that an unknown model fails before any send.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from localmodel.models import LOCAL_MODELS, UnknownModelError
from localmodel.server import serve_realtime

from .local_backend import (
    DELTA_TYPES,
    Backend,
    Event,
    RealtimeClient,
    audio_of,
    b64,
    realtime,
    serve_backend,
    types,
)
from .speech import BYTES_PER_MS, RATE_HZ, chunks, espeak_speech, tone, white_noise

pytestmark = pytest.mark.integration


# -- audio -----------------------------------------------------------------------------------


def pcm_samples(pcm: bytes) -> np.ndarray[Any, np.dtype[np.float64]]:
    return np.frombuffer(pcm, "<i2").astype(np.float64)


@pytest.fixture(scope="module")
def speech_pcm(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """About 2.6 s of speech, pcm16 24 kHz mono (espeak-ng, or syllable-like tone bursts)."""
    if shutil.which("espeak-ng") is None:
        bursts = [
            tone(180, -18.0, 140.0 + 20 * i) + white_noise(60, -60.0, seed=7) for i in range(10)
        ]
        return b"".join(bursts)
    text = "Hello there, this is a test of the echo model."
    return espeak_speech(text, tmp_path_factory.mktemp("speech"), voice="en")


# -- server and client -----------------------------------------------------------------------


@pytest.fixture
async def backend() -> AsyncIterator[Backend]:
    async with serve_backend() as served:
        yield served


async def manual_turns(client: RealtimeClient) -> None:
    updated = await client.roundtrip(
        {"type": "session.update", "session": {"turn_detection": None}}, "session.updated"
    )
    assert updated["session"]["turn_detection"] is None


async def commit(client: RealtimeClient, pcm: bytes) -> list[Event]:
    await client.append(pcm)
    await client.send({"type": "input_audio_buffer.commit"})
    return await client.recv_until("conversation.item.created")


async def start_long_response(client: RealtimeClient, seconds: int = 120) -> list[Event]:
    """Commits `seconds` of audio with VAD off and returns the events up to the first delta."""
    await manual_turns(client)
    await client.append(tone(1000, -30.0, 220.0) * seconds, chunk_bytes=RATE_HZ * 2)
    await client.send({"type": "input_audio_buffer.commit"})
    await client.recv_until("conversation.item.created")
    await client.send({"type": "response.create"})
    return await client.recv_until("response.audio.delta")


BETA_TURN = [
    "input_audio_buffer.speech_started",
    "input_audio_buffer.speech_stopped",
    "input_audio_buffer.committed",
    "conversation.item.created",
    "response.created",
    "response.output_item.added",
    "conversation.item.created",
    "response.content_part.added",
    "response.audio.done",
    "response.audio_transcript.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.done",
]

# -- tests -----------------------------------------------------------------------------------


def test_local_models_lists_echo_first() -> None:
    # /v1/realtime serves the first one when the URL names none.
    assert LOCAL_MODELS == ("echo", "loopback", "assistant")


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


async def test_session_created_describes_pcm16_server_vad(backend: Backend) -> None:
    async with realtime(backend, "echo") as client:
        session = client.session["session"]
    assert session["object"] == "realtime.session" and session["id"]
    assert session["model"] == "echo"
    assert session["modalities"] == ["text", "audio"]
    assert session["input_audio_format"] == session["output_audio_format"] == "pcm16"
    assert isinstance(session["instructions"], str) and isinstance(session["voice"], str)
    detection = session["turn_detection"]
    assert detection["type"] == "server_vad"
    assert (detection["prefix_padding_ms"], detection["silence_duration_ms"]) == (300, 500)
    assert detection["threshold"] == 0.5


async def test_echo_turn_follows_protocol_order_and_echoes_the_utterance(
    backend: Backend, speech_pcm: bytes
) -> None:
    lead_ms = 600
    audio = white_noise(lead_ms, -70.0, seed=7) + speech_pcm + white_noise(1500, -70.0, seed=7)
    async with realtime(backend, "echo") as client:
        await client.append(audio)
        events = await client.recv_until("response.done")

    assert types(events) == BETA_TURN
    by_type = {event["type"]: event for event in events}
    started = by_type["input_audio_buffer.speech_started"]
    stopped = by_type["input_audio_buffer.speech_stopped"]
    committed = by_type["input_audio_buffer.committed"]
    user_created, assistant_created = [
        e for e in events if e["type"] == "conversation.item.created"
    ]
    user_id = started["item_id"]
    assert stopped["item_id"] == committed["item_id"] == user_created["item"]["id"] == user_id
    assert committed["previous_item_id"] is None and user_created["previous_item_id"] is None
    assert user_created["item"]["role"] == "user"
    assert user_created["item"]["content"][0]["type"] == "input_audio"
    assistant = assistant_created["item"]
    assert assistant["role"] == "assistant" and assistant_created["previous_item_id"] == user_id
    # Speech starts ~20-80 ms into the utterance; audio_start_ms includes 300 ms of padding.
    assert lead_ms - 300 <= started["audio_start_ms"] <= lead_ms - 200
    assert stopped["audio_end_ms"] > started["audio_start_ms"] + len(speech_pcm) // BYTES_PER_MS

    response_id = by_type["response.created"]["response"]["id"]
    deltas = [e for e in events if e["type"] in DELTA_TYPES]
    first_delta = events.index(deltas[0])
    assert events.index(by_type["response.content_part.added"]) < first_delta
    assert events.index(deltas[-1]) < events.index(by_type["response.audio.done"])
    for delta in deltas:
        assert delta["response_id"] == response_id and delta["item_id"] == assistant["id"]
        assert (delta["output_index"], delta["content_index"]) == (0, 0)
    assert all(
        len(base64.b64decode(e["delta"])) <= 100 * BYTES_PER_MS
        for e in deltas
        if e["type"] == "response.audio.delta"
    )

    echoed = audio_of(events)
    start, end = started["audio_start_ms"], stopped["audio_end_ms"]
    assert echoed == audio[start * BYTES_PER_MS : end * BYTES_PER_MS]
    # Find the speech inside the echo by cross-correlation: same signal, at the expected lag.
    signal, reference = pcm_samples(echoed), pcm_samples(speech_pcm)
    size = len(signal) + len(reference)
    spectrum = np.fft.rfft(signal, size) * np.conj(np.fft.rfft(reference, size))
    correlation = np.fft.irfft(spectrum, size)[: len(signal) - len(reference) + 1]
    lag = int(np.argmax(correlation))
    assert lag == (lead_ms - start) * RATE_HZ // 1000
    segment = signal[lag : lag + len(reference)]
    assert np.corrcoef(segment, reference)[0, 1] > 0.999

    done = by_type["response.done"]["response"]
    assert done["id"] == response_id and done["status"] == "completed"
    assert [item["id"] for item in done["output"]] == [assistant["id"]]
    transcript = by_type["response.audio_transcript.done"]["transcript"]
    assert transcript.startswith("(echo)")
    assert done["output"][0]["content"][0]["transcript"] == transcript


async def test_vad_off_manual_commit_and_response_create(backend: Backend) -> None:
    pcm = tone(1000, -20.0, 220.0)
    async with realtime(backend, "echo") as client:
        await manual_turns(client)
        await client.send({"type": "input_audio_buffer.commit", "event_id": "early"})
        error = (await client.recv_until("error"))[-1]["error"]
        assert error["code"] == "input_audio_buffer_commit_empty" and error["event_id"] == "early"

        committed = await commit(client, pcm)
        # No VAD events although the tone is loud: the commit drives the turn.
        assert types(committed) == ["input_audio_buffer.committed", "conversation.item.created"]
        await client.send({"type": "response.create"})
        events = await client.recv_until("response.done")
    assert types(events) == BETA_TURN[4:]
    assert audio_of(events) == pcm
    assert events[-1]["response"]["status"] == "completed"


async def test_response_cancel_stops_deltas_and_reports_cancelled(backend: Backend) -> None:
    async with realtime(backend, "echo") as client:
        opening = await start_long_response(client)
        response_id = opening[-1]["response_id"]
        await client.send({"type": "response.cancel", "event_id": "stop"})
        events = opening + await client.recv_until("response.done")
        # Nothing of the cancelled response may follow its response.done.
        await client.send({"type": "input_audio_buffer.clear"})
        rest = [e["type"] for e in await client.recv_until("input_audio_buffer.cleared")]
        await client.send({"type": "response.cancel", "event_id": "again"})
        error = (await client.recv_until("error"))[-1]["error"]

    assert rest == ["input_audio_buffer.cleared"]
    delta_ms = len(audio_of(events)) // BYTES_PER_MS
    assert 0 < delta_ms < 120_000
    tail = types(events)[types(events).index("response.content_part.added") + 1 :]
    assert tail == BETA_TURN[8:]
    done = events[-1]["response"]
    assert done["id"] == response_id and done["status"] == "cancelled"
    assert done["status_details"]["reason"] == "client_cancelled"
    assert done["output"][0]["status"] == "incomplete"
    assert error["code"] == "response_cancel_not_active" and error["event_id"] == "again"


async def test_speech_during_response_cancels_it_as_turn_detected(backend: Backend) -> None:
    async with realtime(backend, "echo") as client:
        opening = await start_long_response(client)
        response_id = opening[-1]["response_id"]
        vad = {"type": "server_vad", "silence_duration_ms": 300}
        await client.send({"type": "session.update", "session": {"turn_detection": vad}})
        await client.append(tone(400, -20.0, 330.0) + white_noise(600, -70.0, seed=7))
        events = await client.recv_until("response.done")
        assert types(events).index("input_audio_buffer.speech_started") < len(events) - 1
        done = events[-1]["response"]
        assert done["id"] == response_id and done["status"] == "cancelled"
        assert done["status_details"]["reason"] == "turn_detected"
        # The interruption becomes the next turn and is answered.
        events = await client.recv_until("response.done")
    assert "input_audio_buffer.speech_stopped" in types(events)
    assert events[-1]["response"]["status"] == "completed"
    assert events[-1]["response"]["id"] != response_id


async def test_truncate_accepts_heard_audio_and_rejects_the_rest(backend: Backend) -> None:
    async with realtime(backend, "echo") as client:
        await manual_turns(client)
        user_id = (await commit(client, tone(1000, -20.0, 220.0)))[-1]["item"]["id"]
        await client.send({"type": "response.create"})
        events = await client.recv_until("response.done")
        item_id = events[-1]["response"]["output"][0]["id"]

        truncated = await client.roundtrip(
            {
                "type": "conversation.item.truncate",
                "item_id": item_id,
                "content_index": 0,
                "audio_end_ms": 400,
            },
            "conversation.item.truncated",
        )
        assert (truncated["item_id"], truncated["content_index"]) == (item_id, 0)
        assert truncated["audio_end_ms"] == 400
        bad_cases = [
            (item_id, 500, "audio_end_ms"),  # longer than what is left after the cut
            (item_id, -1, "audio_end_ms"),
            ("item_missing", 10, "item_id"),
            (user_id, 10, "item_id"),  # only assistant audio can be truncated
        ]
        for index, (target, end_ms, param) in enumerate(bad_cases):
            event = {
                "type": "conversation.item.truncate",
                "event_id": f"bad-{index}",
                "item_id": target,
                "content_index": 0,
                "audio_end_ms": end_ms,
            }
            error = (await client.roundtrip(event, "error"))["error"]
            assert error["type"] == "invalid_request_error"
            assert (error["param"], error["event_id"]) == (param, f"bad-{index}")
        retrieved = await client.roundtrip(
            {"type": "conversation.item.retrieve", "item_id": item_id},
            "conversation.item.retrieved",
        )
    assert retrieved["item"]["content"][0]["transcript"] == ""


async def test_ga_session_update_switches_event_names(backend: Backend) -> None:
    ga_session = {
        "type": "realtime",
        "output_modalities": ["audio"],
        "audio": {
            "input": {"format": {"type": "audio/pcm", "rate": 24000}, "turn_detection": None},
            "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "marin"},
        },
    }
    async with realtime(backend, "echo") as client:
        updated = await client.roundtrip(
            {"type": "session.update", "session": ga_session}, "session.updated"
        )
        session = updated["session"]
        assert session["type"] == "realtime" and session["audio"]["output"]["voice"] == "marin"
        assert session["audio"]["input"]["turn_detection"] is None
        await client.append(tone(500, -20.0, 220.0))
        await client.send({"type": "input_audio_buffer.commit"})
        committed = await client.recv_until("conversation.item.done")
        await client.send({"type": "response.create"})
        events = await client.recv_until("response.done")
        flat = await client.roundtrip(
            {"type": "session.update", "session": {"type": "realtime", "voice": "alloy"}}, "error"
        )
        assert flat["error"]["param"] == "session.voice"
        bad_rate = {"audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000}}}}
        error = (await client.roundtrip({"type": "session.update", "session": bad_rate}, "error"))[
            "error"
        ]

    assert types(committed) == [
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.done",
    ]
    assert types(events) == [
        "response.created",
        "response.output_item.added",
        "conversation.item.added",
        "response.content_part.added",
        "response.output_audio.done",
        "response.output_audio_transcript.done",
        "response.content_part.done",
        "response.output_item.done",
        "conversation.item.done",
        "response.done",
    ]
    delta_types = {e["type"] for e in events if e["type"] in DELTA_TYPES}
    assert delta_types == {"response.output_audio.delta", "response.output_audio_transcript.delta"}
    assert audio_of(events, "response.output_audio.delta") == tone(500, -20.0, 220.0)
    assert events[-1]["response"]["output"][0]["content"][0]["type"] == "output_audio"
    assert error["param"] == "session.audio.input.format.rate"


async def test_session_update_merges_partial_updates(backend: Backend) -> None:
    async with realtime(backend, "echo") as client:
        first = await client.roundtrip(
            {"type": "session.update", "session": {"instructions": "Be brief."}},
            "session.updated",
        )
        assert first["session"]["turn_detection"] == client.session["session"]["turn_detection"]
        second = await client.roundtrip(
            {"type": "session.update", "session": {"turn_detection": {"threshold": 0.7}}},
            "session.updated",
        )
        stepfun = await client.roundtrip(
            {
                "type": "session.update",
                "session": {"turn_detection": {"energy_awakeness_threshold": 1000}},
            },
            "session.updated",
        )
        bad_format = await client.roundtrip(
            {"type": "session.update", "session": {"input_audio_format": "g711_ulaw"}}, "error"
        )
        bad_threshold = await client.roundtrip(
            {"type": "session.update", "session": {"turn_detection": {"threshold": 2}}}, "error"
        )
    session = second["session"]
    assert session["instructions"] == "Be brief."
    assert session["turn_detection"]["threshold"] == 0.7
    assert session["turn_detection"]["prefix_padding_ms"] == 300
    assert stepfun["session"]["turn_detection"]["threshold"] == pytest.approx(0.2)
    assert bad_format["error"]["param"] == "session.input_audio_format"
    assert bad_threshold["error"]["param"] == "session.turn_detection.threshold"


async def test_text_item_create_delete_and_text_response(backend: Backend) -> None:
    async with realtime(backend, "echo") as client:
        message = {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "hello"}],
        }
        created = await client.roundtrip(
            {"type": "conversation.item.create", "item": message}, "conversation.item.created"
        )
        assert created["item"]["content"] == [{"type": "input_text", "text": "hello"}]
        await client.send({"type": "response.create", "response": {"modalities": ["text"]}})
        events = await client.recv_until("response.done")
        item_id = created["item"]["id"]
        deleted = await client.roundtrip(
            {"type": "conversation.item.delete", "item_id": item_id}, "conversation.item.deleted"
        )
        again = await client.roundtrip(
            {"type": "conversation.item.delete", "item_id": item_id}, "error"
        )
    assert "response.text.done" in types(events) and audio_of(events) == b""
    text_done = next(e for e in events if e["type"] == "response.text.done")
    assert text_done["text"] == "(echo) hello"
    assert deleted["item_id"] == item_id
    assert again["error"]["code"] == "item_not_found"


OVERSIZED = "A" * (15 * 1024 * 1024 + 4)


@pytest.mark.parametrize(
    ("message", "code", "param"),
    [
        ("this is not json", "invalid_json", None),
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
    ids=["non-json", "non-object", "unknown-type", "bad-base64", "odd-length", "oversized"],
)
@pytest.mark.parametrize("model", ["echo", "loopback"])
async def test_bad_input_gets_error_and_session_stays_usable(
    backend: Backend, model: str, message: str, code: str, param: str | None
) -> None:
    async with realtime(backend, model) as client:
        await client.websocket.send(message)
        error = (await client.recv_until("error"))[-1]["error"]
        cleared = await client.roundtrip(
            {"type": "input_audio_buffer.clear", "event_id": "next"},
            "input_audio_buffer.cleared",
        )
    assert error["type"] == "invalid_request_error"
    assert (error["code"], error["param"]) == (code, param)
    assert error["message"]
    assert error["event_id"] == ("client-1" if "client-1" in message else None)
    assert cleared["type"] == "input_audio_buffer.cleared"


async def test_input_audio_buffer_is_capped(backend: Backend) -> None:
    minute = b64(white_noise(60_000, -70.0, seed=7))
    async with realtime(backend, "echo") as client:
        await manual_turns(client)
        for _ in range(5):
            await client.send({"type": "input_audio_buffer.append", "audio": minute})
        await client.send({"type": "input_audio_buffer.append", "audio": minute, "event_id": "6"})
        error = (await client.recv_until("error"))[-1]["error"]
        cleared = await client.roundtrip(
            {"type": "input_audio_buffer.clear"}, "input_audio_buffer.cleared"
        )
    assert (error["code"], error["event_id"]) == ("input_audio_buffer_full", "6")
    assert cleared["type"] == "input_audio_buffer.cleared"


async def test_loopback_mirrors_each_append_at_once(backend: Backend, speech_pcm: bytes) -> None:
    async with realtime(backend, "loopback") as client:
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
        await client.roundtrip(
            {"type": "session.update", "session": {"type": "realtime"}}, "session.updated"
        )
        await client.send(
            {"type": "input_audio_buffer.append", "audio": b64(tone(20, -20.0, 220.0))}
        )
        delta = await client.recv(timeout_s=1.0)
    assert delta["type"] == "response.output_audio.delta"
    assert delta["delta"] == b64(tone(20, -20.0, 220.0))


async def test_client_disconnect_mid_response_ends_the_session(backend: Backend) -> None:
    async with realtime(backend, "echo") as client:
        await start_long_response(client)
    await asyncio.wait_for(backend.changed.wait(), 5.0)
    assert backend.ended == [None]
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("localmodel-")]
