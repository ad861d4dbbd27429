"""Speaker.speak_clauses: clauses spoken as they arrive, long sentences cut at commas, the
first clause alone, stop at once, rehearsal of the first clause; English (piper) and Mandarin
(Kokoro)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np
import pytest

from localmodel.speaker import CHUNK_MS, Speaker, first_clause
from localmodel.tts import split_clauses
from tests.test_tts import seconds

pytestmark = pytest.mark.unit

CLAUSES = {
    "en": ("Sure, I can help you with that.", "It is three o'clock in the afternoon."),
    "zh": ("我是你的语音助手，", "很高兴认识你。"),
}
_WAIT_S = 60.0


def assert_audible(pcm: bytes, min_s: float, max_s: float) -> None:
    assert min_s < seconds(pcm) < max_s
    assert np.abs(np.frombuffer(pcm, dtype="<i2")).max() > 3000


class CountingSpeaker(Speaker):
    """A Speaker that records the clauses it synthesizes."""

    def __init__(self) -> None:
        super().__init__()
        self.synthesized: list[str] = []

    def _synthesize(
        self, clause: str, voice: str, language: str | None, stop: threading.Event | None
    ) -> bytes:
        self.synthesized.append(clause)
        return super()._synthesize(clause, voice, language, stop)


@pytest.fixture
def speaker() -> Iterator[CountingSpeaker]:
    speaker = CountingSpeaker()
    yield speaker
    speaker.close()


def gated(first: str, then: str, gate: threading.Event, asked: list[str]) -> Iterator[str]:
    """Clauses as a language model would hand them over: the second only once `gate` opens."""
    asked.append(first)
    yield first
    asked.append("waiting")
    assert gate.wait(_WAIT_S), "the second clause was needed before the first was heard"
    asked.append(then)
    yield then


@pytest.mark.parametrize("language", ["en", "zh"])
def test_the_first_clause_is_heard_before_the_next_is_written(
    speaker: CountingSpeaker, language: str
) -> None:
    first, then = CLAUSES[language]
    gate, asked, stop = threading.Event(), [], threading.Event()
    pieces = speaker.speak_clauses(gated(first, then, gate, asked), "alloy", stop)
    text, pcm = next(pieces)
    assert text == first
    assert asked == [first]  # the next clause was not even asked for yet
    audio = [pcm]
    for text, pcm in pieces:
        if text:
            break
        audio.append(pcm)
        if len(b"".join(audio)) >= 0.5 * 48_000:
            gate.set()  # the rest of the first clause is spoken while the model goes on
    gate.set()
    assert_audible(b"".join(audio), 0.5, 4.0)
    assert text == (then if language == "zh" else " " + then)
    rest = [pcm, *(p for _, p in pieces)]
    assert_audible(b"".join(rest), 0.5, 4.0)
    assert speaker.synthesized == [first, then]
    assert all(len(chunk) <= CHUNK_MS * 48 for chunk in audio + rest)


def test_long_sentences_are_cut_into_clauses(speaker: CountingSpeaker) -> None:
    stop = threading.Event()
    reply = "我是你的语音助手，很高兴认识你。七乘以八等于五十六。"
    labels = [text for text, _ in speaker.speak(reply, "alloy", stop) if text]
    assert labels == ["我是你的语音助手，", "很高兴认识你。", "七乘以八等于五十六。"]
    assert speaker.synthesized == labels
    english = "Hello, I am Ada. It is three o'clock in the afternoon, and the weather is fine."
    labels = [text for text, _ in speaker.speak(english, "alloy", stop) if text]
    assert labels == [
        "Hello, I am Ada.",
        " It is three o'clock in the afternoon,",
        " and the weather is fine.",
    ]


def test_a_stop_ends_speech_at_once(speaker: CountingSpeaker) -> None:
    stop = threading.Event()
    pieces = speaker.speak("我是你的语音助手，很高兴认识你。今天天气很好。", "alloy", stop)
    text, pcm = next(pieces)
    assert text == "我是你的语音助手，" and pcm
    stop.set()
    assert list(pieces) == []
    assert speaker.synthesized == ["我是你的语音助手，"]


def test_a_stop_while_the_model_writes_synthesizes_nothing_more(
    speaker: CountingSpeaker,
) -> None:
    gate, asked, stop = threading.Event(), [], threading.Event()
    first, then = CLAUSES["en"]
    pieces = speaker.speak_clauses(gated(first, then, gate, asked), "alloy", stop)
    assert next(pieces)[0] == first
    stop.set()
    gate.set()
    assert list(pieces) == []
    assert speaker.synthesized == [first]


def test_a_stop_during_a_mandarin_clause_abandons_it(speaker: CountingSpeaker) -> None:
    stop = threading.Event()
    long_clause = "我可以告诉你时间也可以帮你算数还可以陪你聊天讲笑话和查天气。"
    threading.Timer(0.05, stop.set).start()
    assert list(speaker.speak(long_clause, "alloy", stop)) == []


@pytest.mark.parametrize("language", ["en", "zh"])
def test_the_rehearsed_first_clause_is_used(speaker: CountingSpeaker, language: str) -> None:
    reply = "".join(CLAUSES[language]) if language == "zh" else " ".join(CLAUSES[language])
    speaker.rehearse(reply, "alloy")  # the listener hands over the likely first sentence
    first = first_clause(reply)
    stop = threading.Event()
    labels = [text.strip() for text, _ in speaker.speak(reply, "alloy", stop) if text]
    assert labels == [clause.strip() for clause in split_clauses(reply)]
    # The first clause came from the rehearsal (synthesized once, ahead), the rest now.
    assert speaker.synthesized.count(first) == 1
    assert speaker.synthesized[0] == first


def test_a_mandarin_reply_keeps_the_mandarin_voice(speaker: CountingSpeaker) -> None:
    stop = threading.Event()
    pieces = list(speaker.speak_clauses(["你好！", "OK，", "3.5。"], "alloy", stop))
    assert [text for text, _ in pieces if text] == ["你好！", "OK，", "3.5。"]
    assert set(speaker._synthesizers) == {"zh"}
