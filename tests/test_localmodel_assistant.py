"""The `assistant` model's spoken turns over a real WebSocket (websockets on 127.0.0.1).

Pins: a spoken question (piper speech) gets the server-VAD turn events, a transcript with its
key words, a tone event and the answer the rules give, spoken as non-silent 24 kHz pcm16 whose
transcript deltas add up to the answer; silence_duration_ms and prefix_padding_ms move the turn
boundaries; manual commits and audio items are answered too; response.cancel and new speech
stop the audio at once and the speaking thread with it, and truncate works on what was sent;
two sessions answer at the same time; the session gives back its Silero model and ends its
threads; VAD turned back on gets the model's 400 ms default.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator

import numpy as np
import pytest

from localmodel.models import MODEL_SPECS, ModelSpec, UnknownModelError, preload_model
from localmodel.silero import SileroVoiceActivity, shared_silero_pool
from localmodel.speaker import CHUNK_MS
from protocol.audio import BYTES_PER_MS
from protocol.events import ServerEvent
from tests.speech import padded, piper_speech
from tests.transcripts import english_words

from .conftest import wait_until
from .local_assistant import (
    assert_speech,
    collect,
    fix_assistant_clock,
    of,
    one,
    threads_named,
    transcript_of,
)
from .local_backend import Backend, Event, RealtimeClient, audio_of, b64, realtime, serve_backend

pytestmark = pytest.mark.integration

LEAD_MS = 500
TALKATIVE = (
    'You are Ada. Greet the user with "Hello there, I am Ada. I can tell you the time and the '
    "date. I can also add, subtract, multiply and divide numbers for you. Ask me whatever you "
    "like, and I will do my best to answer it. If I do not understand you, I will say so. Let us "
    'begin whenever you are ready. I am listening carefully now."'
)
QUESTIONS = {
    "what is two plus three": "Two plus three is five.",
    "what time is it": "It's 3:05 PM.",
}


@pytest.fixture(scope="module", autouse=True)
def preloaded() -> None:
    preload_model("assistant")


@pytest.fixture(scope="module")
def speech() -> dict[str, bytes]:
    return {text: piper_speech(text) for text in QUESTIONS}


@pytest.fixture
async def backend(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Backend]:
    fix_assistant_clock(monkeypatch)
    async with serve_backend() as served:
        yield served


def turn(pcm: bytes, tail_ms: int = 1500) -> bytes:
    return padded(pcm, LEAD_MS, tail_ms)


def voiced_end_ms(pcm: bytes) -> int:
    """Where the speech in `pcm` ends (piper leaves some silence after it)."""
    samples = np.frombuffer(pcm, "<i2").astype(np.float64) / 32768
    frames = samples[: len(samples) // 240 * 240].reshape(-1, 240)  # 10 ms
    loud = np.flatnonzero(np.sqrt((frames**2).mean(axis=1)) > 10 ** (-45 / 20))
    return int(loud[-1] + 1) * 10


@pytest.mark.parametrize("question", list(QUESTIONS))
async def test_assistant_answers_a_spoken_question(
    backend: Backend, speech: dict[str, bytes], question: str
) -> None:
    async with realtime(backend, "assistant") as client:
        detection = client.session["session"]["turn_detection"]
        assert detection["silence_duration_ms"] == 400
        await client.append(turn(speech[question]))
        events = await collect(
            client,
            "response.done",
            "conversation.item.input_audio_transcription.completed",
            ServerEvent.TONE,
        )

    kinds = [event["type"] for event in events]
    vad = [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.created",
    ]
    assert [kinds.index(kind) for kind in vad] == sorted(kinds.index(kind) for kind in vad)
    started = one(events, "input_audio_buffer.speech_started")
    stopped = one(events, "input_audio_buffer.speech_stopped")
    user_id = started["item_id"]
    assert stopped["item_id"] == one(events, "input_audio_buffer.committed")["item_id"] == user_id
    # Silero needs a few windows to call speech; the start includes 300 ms of padding.
    assert LEAD_MS - 300 - 40 <= started["audio_start_ms"] <= LEAD_MS - 300 + 120
    # The end is where the VAD declared it: after 400 ms of silence (OpenAI's semantics).
    speech_end_ms = LEAD_MS + voiced_end_ms(speech[question])
    assert speech_end_ms + 400 <= stopped["audio_end_ms"] <= speech_end_ms + 400 + 200

    completed = one(events, "conversation.item.input_audio_transcription.completed")
    assert completed["item_id"] == user_id and completed["content_index"] == 0
    words = set(english_words(completed["transcript"]))
    assert set(question.split()) <= words, completed["transcript"]
    tone = one(events, ServerEvent.TONE)
    assert tone["item_id"] == user_id and tone["voiced_s"] > 0.3
    assert tone["loudness_dbfs"] > -30 and tone["pitch_median_hz"] > 60

    done = one(events, "response.done")["response"]
    assert done["status"] == "completed"
    answer = one(events, "response.audio_transcript.done")["transcript"]
    assert answer == QUESTIONS[question]
    assert transcript_of(events) == answer
    assert done["output"][0]["content"][0]["transcript"] == answer
    assert_speech(audio_of(events))
    chunk_sizes = [len(base64.b64decode(e["delta"])) for e in of(events, "response.audio.delta")]
    assert max(chunk_sizes) <= CHUNK_MS * BYTES_PER_MS
    # The transcript of a sentence comes with its first audio chunk.
    first_text = kinds.index("response.audio_transcript.delta")
    assert kinds[first_text + 1] == "response.audio.delta"


async def test_assistant_turn_follows_silence_and_padding_settings(
    backend: Backend, speech: dict[str, bytes]
) -> None:
    pcm = speech["what time is it"]
    async with realtime(backend, "assistant") as client:
        detection = {"silence_duration_ms": 800, "prefix_padding_ms": 100}
        await client.roundtrip(
            {"type": "session.update", "session": {"turn_detection": detection}},
            "session.updated",
        )
        await client.append(turn(pcm))
        events = await collect(client, "response.done")
    started = one(events, "input_audio_buffer.speech_started")
    stopped = one(events, "input_audio_buffer.speech_stopped")
    speech_end_ms = LEAD_MS + voiced_end_ms(pcm)
    assert LEAD_MS - 100 - 40 <= started["audio_start_ms"] <= LEAD_MS - 100 + 120
    assert speech_end_ms + 800 <= stopped["audio_end_ms"] <= speech_end_ms + 800 + 200
    assert one(events, "response.done")["response"]["status"] == "completed"


async def test_assistant_manual_commit_and_audio_items(
    backend: Backend, speech: dict[str, bytes]
) -> None:
    pcm = padded(speech["what is two plus three"], 200, 300)
    async with realtime(backend, "assistant") as client:
        await client.roundtrip(
            {"type": "session.update", "session": {"turn_detection": None}}, "session.updated"
        )
        await client.append(pcm)
        await client.send({"type": "input_audio_buffer.commit"})
        await client.send({"type": "response.create", "response": {"modalities": ["text"]}})
        committed = await collect(
            client, "response.done", "conversation.item.input_audio_transcription.completed"
        )
        item = {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_audio", "audio": b64(pcm)}],
        }
        await client.send({"type": "conversation.item.create", "item": item})
        await client.send({"type": "response.create", "response": {"modalities": ["text"]}})
        created = await collect(
            client, "response.done", "conversation.item.input_audio_transcription.completed"
        )
        user_id = of(created, "conversation.item.created")[0]["item"]["id"]
        retrieved = await client.roundtrip(
            {"type": "conversation.item.retrieve", "item_id": user_id},
            "conversation.item.retrieved",
        )
    for events in (committed, created):
        assert one(events, "response.text.done")["text"] == "Two plus three is five."
        assert (
            "plus"
            in one(events, "conversation.item.input_audio_transcription.completed")["transcript"]
        )
    assert "plus" in retrieved["item"]["content"][0]["transcript"]


async def start_talkative_reply(client: RealtimeClient) -> tuple[list[Event], Event]:
    await client.roundtrip(
        {"type": "session.update", "session": {"instructions": TALKATIVE}}, "session.updated"
    )
    await client.send({"type": "response.create"})
    events = await client.recv_until("response.audio.delta")
    return events, one(events, "response.created")


async def test_assistant_response_cancel_stops_audio_and_truncates(backend: Backend) -> None:
    async with realtime(backend, "assistant") as client:
        opening, created = await start_talkative_reply(client)
        await client.send({"type": "response.cancel"})
        events = opening + await client.recv_until("response.done")
        # The speaking thread stops within one sentence, and nothing more is sent.
        await wait_until(lambda: not threads_named("localmodel-speaker"), timeout_s=5)
        with pytest.raises(TimeoutError):
            await client.recv(timeout_s=0.3)
        item_id = one(events, "response.output_item.added")["item"]["id"]
        sent_ms = len(audio_of(events)) // BYTES_PER_MS
        truncated = await client.roundtrip(
            {
                "type": "conversation.item.truncate",
                "item_id": item_id,
                "content_index": 0,
                "audio_end_ms": sent_ms // 2,
            },
            "conversation.item.truncated",
        )
        too_far = await client.roundtrip(
            {
                "type": "conversation.item.truncate",
                "item_id": item_id,
                "content_index": 0,
                "audio_end_ms": sent_ms + 1000,
            },
            "error",
        )
    done = events[-1]["response"]
    assert done["id"] == created["response"]["id"]
    assert done["status"] == "cancelled"
    assert done["status_details"]["reason"] == "client_cancelled"
    full_s = len(TALKATIVE.split('"')[1].split()) * 0.3  # far more than was sent
    assert 0 < sent_ms < full_s * 1000
    assert truncated["audio_end_ms"] == sent_ms // 2
    assert too_far["error"]["param"] == "audio_end_ms"


async def test_assistant_new_speech_interrupts_the_reply(
    backend: Backend, speech: dict[str, bytes]
) -> None:
    async with realtime(backend, "assistant") as client:
        _, created = await start_talkative_reply(client)
        await client.append(turn(speech["what is two plus three"]))
        events = await collect(client, "response.done")
        cancelled = events[-1]["response"]
        second = await collect(client, "response.done")
    assert cancelled["id"] == created["response"]["id"]
    assert (cancelled["status"], cancelled["status_details"]["reason"]) == (
        "cancelled",
        "turn_detected",
    )
    done_at = len(events) - 1
    started_at = [e["type"] for e in events].index("input_audio_buffer.speech_started")
    assert started_at < done_at
    # No audio of the interrupted response after it was cancelled.
    assert not [e for e in second if e.get("response_id") == cancelled["id"]]
    assert one(second, "response.audio_transcript.done")["transcript"] == (
        "Two plus three is five."
    )


async def test_assistant_sessions_answer_at_the_same_time(
    backend: Backend, speech: dict[str, bytes]
) -> None:
    async def ask(question: str) -> str:
        async with realtime(backend, "assistant") as client:
            await client.append(turn(speech[question]))
            events = await collect(client, "response.done")
        return str(one(events, "response.audio_transcript.done")["transcript"])

    answers = await asyncio.gather(*(ask(question) for question in QUESTIONS))
    assert answers == list(QUESTIONS.values())


async def test_assistant_session_end_releases_models_and_threads(
    backend: Backend, speech: dict[str, bytes]
) -> None:
    pool = shared_silero_pool()
    idle = pool.idle_count()
    async with realtime(backend, "assistant") as client:
        assert pool.idle_count() == max(idle - 1, 0)
        await client.append(turn(speech["what time is it"]))
        await collect(client, "response.done")
        assert threads_named("localmodel-listener")
    await asyncio.wait_for(backend.changed.wait(), 10)
    assert pool.idle_count() == max(idle, 1)
    await wait_until(lambda: not threads_named("localmodel-"), timeout_s=10)
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("localmodel-")]


def test_assistant_spec_uses_silero_and_a_shorter_silence() -> None:
    spec: ModelSpec = MODEL_SPECS["assistant"]
    assert spec.turn_detection.silence_duration_ms == 400
    activity = spec.voice_activity()
    assert isinstance(activity, SileroVoiceActivity)
    activity.close()


async def test_assistant_vad_turned_back_on_gets_the_model_defaults(backend: Backend) -> None:
    async with realtime(backend, "assistant") as client:
        off = await client.roundtrip(
            {"type": "session.update", "session": {"turn_detection": None}}, "session.updated"
        )
        on = await client.roundtrip(
            {"type": "session.update", "session": {"turn_detection": {"type": "server_vad"}}},
            "session.updated",
        )
    assert off["session"]["turn_detection"] is None
    assert on["session"]["turn_detection"]["silence_duration_ms"] == 400


def test_preload_model_is_a_no_op_without_weights_and_checks_the_name() -> None:
    preload_model("echo")
    preload_model("assistant")  # loaded already: returns at once
    with pytest.raises(UnknownModelError):
        preload_model("no-such-model")
