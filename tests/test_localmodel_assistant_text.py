"""The `assistant` model's typed turns over a real WebSocket (websockets on 127.0.0.1).

Pins: typed text is answered in both dialects, spoken and transcribed; a greeting at session
start follows the persona and text-only responses carry no audio; Chinese speaks with Kokoro,
the `espeak` voice with espeak-ng; bad input gets an `error` and the session keeps answering.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from localmodel.kokoro import KokoroSynthesizer
from localmodel.models import preload_model
from localmodel.tts import EspeakSynthesizer

from .local_assistant import (
    assert_speech,
    collect,
    fix_assistant_clock,
    of,
    one,
    transcript_of,
    user_text,
)
from .local_backend import Backend, Event, audio_of, realtime, serve_backend

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", autouse=True)
def preloaded() -> None:
    preload_model("assistant")


@pytest.fixture
async def backend(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Backend]:
    fix_assistant_clock(monkeypatch)
    async with serve_backend() as served:
        yield served


async def test_assistant_answers_typed_text_in_both_dialects(backend: Backend) -> None:
    typed = user_text("what is 12 times 4")
    async with realtime(backend, "assistant") as client:
        await client.send(typed)
        await client.send({"type": "response.create"})
        beta = await collect(client, "response.done")
        await client.roundtrip(
            {"type": "session.update", "session": {"type": "realtime"}}, "session.updated"
        )
        await client.send(typed)
        await client.send({"type": "response.create"})
        ga = await collect(client, "response.done")
    answer = "Twelve times four is forty-eight."
    assert one(beta, "response.audio_transcript.done")["transcript"] == answer
    assert_speech(audio_of(beta))
    assert one(ga, "response.output_audio_transcript.done")["transcript"] == answer
    assert transcript_of(ga, "response.output_audio_transcript.delta") == answer
    assert_speech(audio_of(ga, "response.output_audio.delta"))
    assert not of(ga, "response.audio.delta")


async def test_assistant_greets_in_persona_and_answers_text_only(backend: Backend) -> None:
    instructions = 'You are Max, a formal butler. Greet the user with "Good evening, sir."'
    async with realtime(backend, "assistant") as client:
        await client.roundtrip(
            {"type": "session.update", "session": {"instructions": instructions}},
            "session.updated",
        )
        await client.send({"type": "response.create"})
        greeting = await collect(client, "response.done")
        await client.send(user_text("what time is it"))
        await client.send({"type": "response.create", "response": {"modalities": ["text"]}})
        text_only = await collect(client, "response.done")
    assert one(greeting, "response.audio_transcript.done")["transcript"] == "Good evening, sir."
    assert_speech(audio_of(greeting))
    assert one(text_only, "response.text.done")["text"] == "It is 3:05 PM."
    assert not of(text_only, "response.audio.delta")


@pytest.mark.parametrize(
    ("session", "text", "answer", "voice"),
    [
        ({"instructions": "你是小艾，一个开朗的助手。"}, "现在几点", "现在是15点5分。", "zh"),
        ({"voice": "espeak"}, "what time is it", "It's 3:05 PM.", "en-us"),
    ],
    ids=["mandarin-kokoro", "espeak-voice"],
)
async def test_assistant_speaks_with_kokoro_or_espeak(
    backend: Backend,
    monkeypatch: pytest.MonkeyPatch,
    session: Event,
    text: str,
    answer: str,
    voice: str,
) -> None:
    voices: list[str] = []
    for synthesizer in (EspeakSynthesizer, KokoroSynthesizer):

        def spy(self: Any, text: str, stop: Any = None, real: Any = synthesizer.synthesize) -> Any:
            voices.append(self.language)
            return real(self, text, stop)

        monkeypatch.setattr(synthesizer, "synthesize", spy)
    async with realtime(backend, "assistant") as client:
        await client.roundtrip({"type": "session.update", "session": session}, "session.updated")
        await client.send(user_text(text))
        await client.send({"type": "response.create"})
        events = await collect(client, "response.done")
    assert one(events, "response.audio_transcript.done")["transcript"] == answer
    assert_speech(audio_of(events))
    assert voices == [voice]


OVERSIZED = "A" * (15 * 1024 * 1024 + 4)


@pytest.mark.parametrize(
    ("event", "code", "param"),
    [
        ({"type": "no.such.event"}, "invalid_value", "type"),
        (
            {"type": "input_audio_buffer.append", "audio": "@@not base64@@"},
            "invalid_base64",
            "audio",
        ),
        (
            {"type": "session.update", "session": {"input_audio_format": "g711_ulaw"}},
            "invalid_value",
            "session.input_audio_format",
        ),
        ({"type": "input_audio_buffer.append", "audio": OVERSIZED}, "audio_too_large", "audio"),
    ],
    ids=["unknown-type", "bad-base64", "wrong-format", "oversized"],
)
async def test_assistant_bad_input_gets_error_and_keeps_answering(
    backend: Backend, event: Event, code: str, param: str
) -> None:
    async with realtime(backend, "assistant") as client:
        error = (await client.roundtrip({**event, "event_id": "bad"}, "error"))["error"]
        await client.send(user_text("what is two plus two"))
        await client.send({"type": "response.create", "response": {"modalities": ["text"]}})
        events = await collect(client, "response.done")
    assert (error["code"], error["param"], error["event_id"]) == (code, param, "bad")
    assert one(events, "response.text.done")["text"] == "Two plus two is four."
