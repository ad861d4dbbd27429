"""Turns of the embedded local backend over a real WebSocket (websockets on 127.0.0.1).

Pins: the server-VAD turn's event order and that `echo` returns exactly the utterance it cut;
manual turns with VAD off; response.cancel and barge-in stopping deltas at once and closing the
response as cancelled; and the bounded input audio buffer.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from protocol.audio import BYTES_PER_MS, PCM_RATE_HZ

from .local_backend import (
    BETA_TURN,
    DELTA_TYPES,
    audio_of,
    b64,
    commit,
    manual_turns,
    realtime,
    serve_backend,
    speech_sample,
    start_long_response,
    types,
)
from .speech import tone, white_noise

pytestmark = pytest.mark.integration


def pcm_samples(pcm: bytes) -> np.ndarray[Any, np.dtype[np.float64]]:
    return np.frombuffer(pcm, "<i2").astype(np.float64)


async def test_echo_turn_follows_protocol_order_and_echoes_the_utterance(tmp_path: Path) -> None:
    lead_ms = 600
    speech_pcm = speech_sample(tmp_path)
    audio = white_noise(lead_ms, -70.0, seed=7) + speech_pcm + white_noise(1500, -70.0, seed=7)
    async with serve_backend() as backend, realtime(backend, "echo") as client:
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
    assert lag == (lead_ms - start) * PCM_RATE_HZ // 1000
    segment = signal[lag : lag + len(reference)]
    assert np.corrcoef(segment, reference)[0, 1] > 0.999

    done = by_type["response.done"]["response"]
    assert done["id"] == response_id and done["status"] == "completed"
    assert [item["id"] for item in done["output"]] == [assistant["id"]]
    transcript = by_type["response.audio_transcript.done"]["transcript"]
    assert transcript.startswith("(echo)")
    assert done["output"][0]["content"][0]["transcript"] == transcript


async def test_vad_off_manual_commit_and_response_create() -> None:
    pcm = tone(1000, -20.0, 220.0)
    async with serve_backend() as backend, realtime(backend, "echo") as client:
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


async def test_response_cancel_stops_deltas_and_reports_cancelled() -> None:
    async with serve_backend() as backend, realtime(backend, "echo") as client:
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


async def test_response_create_while_one_is_active_is_refused() -> None:
    async with serve_backend() as backend, realtime(backend, "echo") as client:
        opening = await start_long_response(client)
        await client.send({"type": "response.create", "event_id": "second"})
        events = await client.recv_until("error")
        await client.send({"type": "response.cancel"})
        done = (await client.recv_until("response.done"))[-1]["response"]
    error = events[-1]["error"]
    assert (error["code"], error["event_id"]) == (
        "conversation_already_has_active_response",
        "second",
    )
    assert opening[-1]["response_id"] in error["message"]
    assert done["id"] == opening[-1]["response_id"] and done["status"] == "cancelled"


async def test_speech_during_response_cancels_it_as_turn_detected() -> None:
    async with serve_backend() as backend, realtime(backend, "echo") as client:
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


async def test_input_audio_buffer_is_capped() -> None:
    minute = b64(white_noise(60_000, -70.0, seed=7))
    async with serve_backend() as backend, realtime(backend, "echo") as client:
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
