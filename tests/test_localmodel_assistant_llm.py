"""The `assistant` answering with its language model, over a real WebSocket (websockets on
127.0.0.1), for real: Qwen2.5-Coder-0.5B on llama.cpp, piper for the voice.

Pins: issue 15's six everyday turns get fitting answers, not fallbacks (the tired turn no
plain greeting), arithmetic and time exactly; a Mandarin question is answered in Mandarin; a
tired tone of voice reaches the model and changes its answer; a response cancelled while the
model generates stops generation and speech at once, and nothing of it comes after
`response.done`; the second turn of a conversation evaluates only its new tokens.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace

import pytest

pytest.importorskip("llama_cpp")

from localmodel import assistant, listener  # noqa: E402
from localmodel.assistant import TurnTiming  # noqa: E402
from localmodel.llm import MAX_REPLY_TOKENS  # noqa: E402
from localmodel.models import preload_model  # noqa: E402
from localmodel.persona import CJK  # noqa: E402
from protocol.audio import BYTES_PER_MS  # noqa: E402
from protocol.prosody import ToneFeatures, analyze_utterance  # noqa: E402
from tests.speech import CHUNK_BYTES, padded, piper_speech  # noqa: E402

from .conftest import wait_until  # noqa: E402
from .local_assistant import (  # noqa: E402
    collect,
    fix_assistant_clock,
    of,
    one,
    threads_named,
    transcript_of,
    user_text,
)
from .local_backend import (  # noqa: E402
    Backend,
    Event,
    RealtimeClient,
    audio_of,
    b64,
    realtime,
    serve_backend,
)

pytestmark = pytest.mark.integration

FALLBACKS = ("didn't understand", "didn't catch", "not understand", "没听懂", "没听清")
GREETINGS = ("hello", "hi", "hey", "good day", "greetings")
TIRED_WORDS = ("tired", "rest", "sleep", "sorry", "easy", "break", "relax", "worn")


@pytest.fixture(scope="module", autouse=True)
def preloaded() -> None:
    preload_model("assistant")


@pytest.fixture
async def backend(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Backend]:
    fix_assistant_clock(monkeypatch)
    async with serve_backend() as served:
        yield served


@pytest.fixture
def timings(caplog: pytest.LogCaptureFixture) -> Iterator[list[TurnTiming]]:
    """Each response's TurnTiming, from the assistant's debug log records."""
    caplog.set_level(logging.DEBUG, logger="localmodel.assistant")
    found: list[TurnTiming] = []

    class Timings(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            timing = getattr(record, "turn_timing", None)
            if isinstance(timing, TurnTiming):
                found.append(timing)

    handler = Timings()
    logging.getLogger("localmodel.assistant").addHandler(handler)
    yield found
    logging.getLogger("localmodel.assistant").removeHandler(handler)


async def ask(client: RealtimeClient, text: str, audio: bool = False) -> list[Event]:
    await client.send(user_text(text))
    modalities = ["text", "audio"] if audio else ["text"]
    await client.send({"type": "response.create", "response": {"modalities": modalities}})
    return await collect(client, "response.done", timeout_s=120)


def answer_of(events: list[Event]) -> str:
    done = of(events, "response.text.done") or of(events, "response.audio_transcript.done")
    assert len(done) == 1
    return str(done[0].get("text", done[0].get("transcript")))


def is_fallback(text: str) -> bool:
    return not text.strip() or any(f in text.lower() for f in FALLBACKS)


def first_word(text: str) -> str:
    return text.split()[0].strip(",.!").lower() if text.split() else ""


async def test_assistant_answers_the_six_everyday_turns(backend: Backend) -> None:
    answers: dict[str, str] = {}
    async with realtime(backend, "assistant") as client:
        for turn in (
            "Hello, who are you?",
            "What can you do for me?",
            "Tell me a joke.",
            "I am feeling a little tired today.",
            "What is seven times eight?",
            "Thank you, goodbye.",
            "What time is it?",
        ):
            answers[turn] = answer_of(await ask(client, turn))
    for turn, answer in answers.items():
        assert not is_fallback(answer), (turn, answer)
        assert len(answer.split()) <= 60 and not CJK.search(answer), (turn, answer)
        assert not any(c in answer for c in "*#`"), answer
    assert answers["What is seven times eight?"] == "Seven times eight is fifty-six."
    assert answers["What time is it?"] == "It's 3:05 PM."
    assert "assistant" in answers["Hello, who are you?"].lower()
    tired = answers["I am feeling a little tired today."]
    assert first_word(tired) not in GREETINGS, tired
    assert any(word in tired.lower() for word in TIRED_WORDS), tired
    assert any(w in answers["Thank you, goodbye."].lower() for w in ("bye", "welcome"))


@pytest.mark.parametrize(
    ("instructions", "question"),
    [("", "你好，你是谁？"), ("你是小艾，一个开朗的助手。", "给我讲个笑话吧。")],
    ids=["english-persona", "chinese-persona"],
)
async def test_assistant_answers_mandarin_in_mandarin(
    backend: Backend, instructions: str, question: str
) -> None:
    async with realtime(backend, "assistant") as client:
        await client.roundtrip(
            {"type": "session.update", "session": {"instructions": instructions}},
            "session.updated",
        )
        answer = answer_of(await ask(client, question))
    assert not is_fallback(answer), answer
    letters = [c for c in answer if c.isalpha()]
    assert len(CJK.findall(answer)) > 0.8 * len(letters), answer


TIRED = ToneFeatures(
    duration_s=2.0,
    voiced_s=1.2,
    pitch_median_hz=110.0,
    pitch_range_hz=20.0,
    loudness_dbfs=-38.0,
    speaking_rate_sps=1.8,
    syllables=4,
)


async def test_assistant_answer_fits_a_tired_voice(
    backend: Backend, monkeypatch: pytest.MonkeyPatch, timings: list[TurnTiming]
) -> None:
    pcm = padded(piper_speech("I just finished my work for today."), 200, 300)
    item = {
        "type": "message",
        "role": "user",
        "content": [{"type": "input_audio", "audio": b64(pcm)}],
    }

    async def reply(tone: ToneFeatures | None) -> str:
        if tone is not None:  # the voice as a tired person's (the listener or the item path)
            monkeypatch.setattr(assistant, "analyze_utterance", lambda audio: tone)
            monkeypatch.setattr(listener, "analyze_utterance", lambda audio: tone)
        async with realtime(backend, "assistant") as client:
            await client.send({"type": "conversation.item.create", "item": item})
            await client.send({"type": "response.create", "response": {"modalities": ["text"]}})
            events = await collect(
                client,
                "response.done",
                "conversation.item.input_audio_transcription.completed",
                timeout_s=120,
            )
        return answer_of(events)

    calm = await reply(None)
    tired = await reply(TIRED)
    assert [t.rule for t in timings] == ["llm", "llm"]
    assert analyze_utterance(pcm).loudness_dbfs > TIRED.loudness_dbfs + 10  # it was patched
    assert not is_fallback(calm) and not is_fallback(tired)
    assert tired != calm
    assert tired.startswith("You sound tired.") and len(tired) > len("You sound tired.") + 5
    assert first_word(tired) not in GREETINGS, tired


@pytest.mark.parametrize("how", ["response.cancel", "new-speech"])
async def test_assistant_barge_in_during_generation_stops_it(
    backend: Backend, timings: list[TurnTiming], how: str
) -> None:
    question = padded(piper_speech("What is two plus two?"), 500, 1500)
    async with realtime(backend, "assistant") as client:
        await client.send(user_text("Tell me a long story about a brave little dragon."))
        await client.send({"type": "response.create"})
        opening = await client.recv_until("response.audio.delta", timeout_s=120)
        if how == "response.cancel":
            await client.send({"type": "response.cancel"})
        else:
            await client.append(question)
        events = opening + await client.recv_until("response.done", timeout_s=60)
        cancelled = events[-1]["response"]
        if how == "response.cancel":
            # Nothing of the cancelled response after response.done: no audio, no transcript.
            with pytest.raises(TimeoutError):
                await client.recv(timeout_s=0.5)
            after = await ask(client, "What is two plus two?")
        else:
            after = await collect(client, "response.done", timeout_s=120)
            assert not [e for e in after if e.get("response_id") == cancelled["id"]]
        await wait_until(lambda: not threads_named("localmodel-llm"), timeout_s=2)
        await wait_until(lambda: len(timings) == 2, timeout_s=5)
        # The generation's own report comes from its thread when it has stopped.
        await wait_until(lambda: timings[0].generation is not None, timeout_s=2)
    reason = "client_cancelled" if how == "response.cancel" else "turn_detected"
    assert (cancelled["status"], cancelled["status_details"]["reason"]) == ("cancelled", reason)
    generation = timings[0].generation
    assert generation is not None and generation.stopped
    assert generation.tokens < MAX_REPLY_TOKENS
    said = transcript_of(events)
    assert said and cancelled["output"][0]["content"][0]["transcript"] == said
    assert audio_of(events)  # it was speaking when it was cut off
    # The model was free at once for the next turn.
    assert answer_of(after) == "Two plus two is four."


async def test_assistant_second_turn_evaluates_only_new_tokens(
    backend: Backend, timings: list[TurnTiming]
) -> None:
    async with realtime(backend, "assistant") as client:
        await client.roundtrip(
            {"type": "session.update", "session": {"instructions": "You are Bo, a gardener."}},
            "session.updated",
        )
        first = answer_of(await ask(client, "Which flower smells nice?", audio=True))
        second = answer_of(await ask(client, "And which one is easy to grow?", audio=True))
    assert not is_fallback(first) and not is_fallback(second)
    one_, two = (t.generation for t in timings)
    assert one_ is not None and two is not None
    assert not two.persona_restored and two.persona_tokens > 100
    # The persona and the first exchange were in the KV cache: only the new turn (and the
    # end of the first reply, re-tokenized from its transcript) was evaluated.
    assert two.evaluated_tokens < two.prompt_tokens - two.persona_tokens - 10
    assert two.evaluated_tokens < 40
    assert timings[1].first_audio_s is not None


def test_tired_tone_is_what_the_rules_call_tired() -> None:
    from localmodel.replies import ReplyEngine

    assert ReplyEngine().reply("I just finished my work for today.", TIRED).tone == "tired"
    assert ReplyEngine().reply("I just finished", replace(TIRED, loudness_dbfs=-20)).tone is None


async def test_assistant_starts_the_reply_at_the_pause(
    backend: Backend, timings: list[TurnTiming]
) -> None:
    # A long hangover: the words at the 200 ms pause are known well before the turn ends, so
    # the model's first clause is generated (and its audio rehearsed) ahead.
    pcm = padded(piper_speech("Tell me a joke."), 500, 2500)
    detection = {"type": "server_vad", "silence_duration_ms": 1500}
    async with realtime(backend, "assistant") as client:
        await client.roundtrip(
            {"type": "session.update", "session": {"turn_detection": detection}},
            "session.updated",
        )
        for offset in range(0, len(pcm), CHUNK_BYTES):  # in real time, as a microphone would
            await client.append(pcm[offset : offset + CHUNK_BYTES])
            await asyncio.sleep(CHUNK_BYTES / BYTES_PER_MS / 1000)
        spoken = await collect(
            client,
            "response.done",
            "conversation.item.input_audio_transcription.completed",
            timeout_s=120,
        )
    heard = one(spoken, "conversation.item.input_audio_transcription.completed")["transcript"]
    async with realtime(backend, "assistant") as client:
        typed = answer_of(await ask(client, heard, audio=True))
    assert [t.speculated for t in timings] == [True, False]
    # The same reply as without the head start (greedy decoding), spoken from its start.
    assert answer_of(spoken) == typed and not is_fallback(typed)
    assert transcript_of(spoken) == typed
