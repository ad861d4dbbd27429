"""UtteranceListener: recognition of a session's utterances on its own thread.

Pins: stable words go out as increments while the user speaks and the final transcript when
the utterance is committed; a pause hands the words so far to the model, and its pass is kept
as the final transcript when the turn ends there (no second pass), with its timings; speech
after the pause gets a new pass; discarded utterances never resolve; a recognizer failure
becomes a `failed` event and an empty understanding instead of hanging the response; and the
thread ends with the listener.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import TypeVar

import pytest

pytest.importorskip("ctranslate2")

from localmodel.asr import SpeechRecognizer, shared_whisper  # noqa: E402
from localmodel.listener import (  # noqa: E402
    MAX_SILENCE_MS,
    PAUSE_MS,
    UtteranceListener,
    _Utterance,
)
from localmodel.models import (  # noqa: E402
    InputEvent,
    InputTone,
    InputTranscriptDelta,
    InputTranscriptDone,
    InputTranscriptFailed,
)
from localmodel.whisper import WhisperRecognizer  # noqa: E402
from tests.speech import chunks, padded, piper_speech, silence  # noqa: E402
from tests.transcripts import english_words  # noqa: E402

from .conftest import wait_until  # noqa: E402

pytestmark = pytest.mark.unit

E = TypeVar("E", bound=InputEvent)


@pytest.fixture(scope="module")
def model() -> WhisperRecognizer:
    return shared_whisper()


@pytest.fixture(scope="module")
def question() -> bytes:
    return padded(piper_speech("Hello, I would like to know what time it is."), 300, 0)


class Recorder:
    def __init__(self) -> None:
        self.events: list[InputEvent] = []
        self.pauses: list[tuple[str, str]] = []

    def on_event(self, event: InputEvent) -> None:
        self.events.append(event)

    def on_pause(self, item_id: str, words: str) -> None:
        self.pauses.append((item_id, words))

    def of(self, kind: type[E]) -> list[E]:
        return [event for event in self.events if isinstance(event, kind)]

    def listen(self, recognizer: Callable[[], SpeechRecognizer]) -> UtteranceListener:
        """A listener whose events and pauses this recorder keeps."""
        return UtteranceListener(recognizer, self.on_event, self.on_pause)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def listener_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "localmodel-listener"]


async def speak(listener: UtteranceListener, pcm: bytes, pace_s: float = 0.004) -> None:
    for chunk in chunks(pcm):
        listener.hear(chunk, 0)
        await asyncio.sleep(pace_s)


def test_stable_increment_sends_all_but_the_last_word_of_each_pass() -> None:
    utterance = _Utterance()
    assert utterance.stable_increment("what") == ""
    assert utterance.stable_increment("what time") == "what"
    assert utterance.stable_increment("what time is") == " time"
    # A revision of words already sent stops the deltas: they cannot be taken back.
    assert utterance.stable_increment("but time is it") == ""
    assert utterance.stable_increment("what time is it") == " is"
    utterance.reset("next")
    assert utterance.stable_increment("hello there") == "hello"
    # Whisper's punctuation: the closing mark of a pass waits, with its last word.
    utterance.reset("punctuated")
    assert utterance.stable_increment("Hello.") == ""
    assert utterance.stable_increment("Hello, I") == "Hello"
    assert utterance.stable_increment("Hello, I would like to know.") == ", I would like to"
    # Chinese has no spaces: characters are the units.
    utterance.reset("zh")
    assert utterance.stable_increment("你好") == "你"
    assert utterance.stable_increment("你好吗？我") == "好吗"


async def test_listener_streams_deltas_then_the_final_transcript(
    model: WhisperRecognizer, question: bytes, recorder: Recorder
) -> None:
    question += piper_speech("And could you also tell me the date of today, please?")
    listener = recorder.listen(lambda: SpeechRecognizer(model))
    listener.speech_started("item_1")
    await speak(listener, question, pace_s=0.02)  # real time: partial passes every ~1.2 s
    listener.speech_stopped("item_1", question)
    heard = await asyncio.wait_for(listener.understanding("item_1"), 20)
    await asyncio.sleep(0.05)  # the tone event follows its own thread
    await listener.aclose()

    assert {"time", "is", "it"} <= set(english_words(heard.transcript)), heard.transcript
    assert heard.tone is not None and heard.tone.voiced_s > 0.5
    deltas = recorder.of(InputTranscriptDelta)
    assert deltas, "no transcript delta while speaking"
    streamed = english_words("".join(delta.delta for delta in deltas))
    assert streamed == english_words(heard.transcript)[: len(streamed)], streamed
    assert {event.item_id for event in recorder.events} == {"item_1"}
    done = recorder.of(InputTranscriptDone)
    assert [event.transcript for event in done] == [heard.transcript]
    timing = done[0].timing
    assert timing is not None and not timing.reused_pause_pass
    assert 0 <= timing.stopped_ms <= timing.started_ms < timing.ended_ms
    assert len(recorder.of(InputTone)) == 1
    # Deltas come before the final transcript, and no pause was reported.
    assert recorder.events.index(deltas[-1]) < recorder.events.index(done[0])
    assert recorder.pauses == []
    assert listener_threads() == []


class CountingRecognizer(SpeechRecognizer):
    """Counts what it is fed and how often the end of an utterance costs a pass."""

    fed = 0
    finished = 0

    def feed(self, pcm24k: bytes) -> None:
        CountingRecognizer.fed += len(pcm24k)
        super().feed(pcm24k)

    def finish(self) -> str:
        CountingRecognizer.finished += 1
        return super().finish()


@pytest.fixture
def counting() -> type[CountingRecognizer]:
    CountingRecognizer.fed = CountingRecognizer.finished = 0
    return CountingRecognizer


async def pause(listener: UtteranceListener) -> None:
    """The VAD's hangover as it is counted: a pause at PAUSE_MS, then more silence."""
    for silence_ms in range(20, PAUSE_MS + 120, 20):
        listener.hear(silence(20), silence_ms)


async def test_listener_keeps_the_pause_pass_when_the_turn_ends_there(
    model: WhisperRecognizer,
    question: bytes,
    recorder: Recorder,
    counting: type[CountingRecognizer],
) -> None:
    listener = recorder.listen(lambda: counting(model))
    listener.speech_started("item_1")
    await speak(listener, question, pace_s=0)
    await pause(listener)  # one report per pause
    await wait_until(lambda: recorder.pauses, timeout_s=20)
    listener.speech_stopped("item_1", question)
    heard = await asyncio.wait_for(listener.understanding("item_1"), 20)
    await listener.aclose()

    assert recorder.pauses == [("item_1", heard.transcript)]
    assert "time" in english_words(heard.transcript)
    assert counting.finished == 0  # the end of the turn cost no pass
    (done,) = recorder.of(InputTranscriptDone)
    assert done.timing is not None and done.timing.reused_pause_pass
    # The pass started at the pause and ended before the turn did.
    assert done.timing.started_ms < done.timing.ended_ms <= done.timing.stopped_ms


async def test_listener_speech_after_the_pause_gets_a_new_pass(
    model: WhisperRecognizer,
    question: bytes,
    recorder: Recorder,
    counting: type[CountingRecognizer],
) -> None:
    more = piper_speech("And what is the date?")
    listener = recorder.listen(lambda: counting(model))
    listener.speech_started("item_1")
    await speak(listener, question, pace_s=0)
    await pause(listener)
    await wait_until(lambda: recorder.pauses, timeout_s=20)
    await speak(listener, more, pace_s=0)
    listener.speech_stopped("item_1", question + more)
    heard = await asyncio.wait_for(listener.understanding("item_1"), 20)
    await listener.aclose()

    assert {"time", "date"} <= set(english_words(heard.transcript)), heard.transcript
    assert counting.finished == 1
    (done,) = recorder.of(InputTranscriptDone)
    assert done.timing is not None and not done.timing.reused_pause_pass


async def test_listener_discarded_utterance_is_forgotten(
    model: WhisperRecognizer, question: bytes, recorder: Recorder
) -> None:
    listener = recorder.listen(lambda: SpeechRecognizer(model))
    listener.speech_started("item_1")
    await speak(listener, question[: len(question) // 2], pace_s=0)
    listener.speech_discarded()
    assert not listener.knows("item_1")
    # A commit of audio it never heard (manual commit) starts, hears and stops in one go.
    listener.speech_stopped("item_2", question)
    heard = await asyncio.wait_for(listener.understanding("item_2"), 20)
    await listener.aclose()
    assert "time" in heard.transcript
    assert {event.item_id for event in recorder.of(InputTranscriptDone)} == {"item_2"}


class BrokenRecognizer(SpeechRecognizer):
    def finish(self) -> str:
        raise RuntimeError("decoder crashed")


async def test_listener_failure_is_reported_not_hung(
    model: WhisperRecognizer, question: bytes, recorder: Recorder
) -> None:
    listener = recorder.listen(lambda: BrokenRecognizer(model))
    listener.speech_stopped("item_1", question)
    heard = await asyncio.wait_for(listener.understanding("item_1"), 20)
    await listener.aclose()
    assert heard.transcript == ""
    failed = recorder.of(InputTranscriptFailed)
    assert len(failed) == 1 and "decoder crashed" in failed[0].message


class DyingRecognizer(SpeechRecognizer):
    """Its process dies during the pass at the pause."""

    def request_partial(self, urgent: bool = False) -> Future[str]:
        future: Future[str] = Future()
        future.set_exception(RuntimeError("recognizer process has exited"))
        return future


async def test_listener_failed_pause_pass_fails_the_turn(
    model: WhisperRecognizer, question: bytes, recorder: Recorder
) -> None:
    listener = recorder.listen(lambda: DyingRecognizer(model))
    listener.speech_started("item_1")
    await speak(listener, question[: len(question) // 2], pace_s=0)
    await pause(listener)
    listener.speech_stopped("item_1", question[: len(question) // 2])
    heard = await asyncio.wait_for(listener.understanding("item_1"), 20)
    await listener.aclose()
    assert heard.transcript == "" and recorder.pauses == []
    (failed,) = recorder.of(InputTranscriptFailed)
    assert "exited" in failed.message
    assert recorder.of(InputTranscriptDone) == []


async def test_listener_does_not_decode_long_trailing_silence(
    model: WhisperRecognizer,
    question: bytes,
    recorder: Recorder,
    counting: type[CountingRecognizer],
) -> None:
    listener = recorder.listen(lambda: counting(model))
    listener.speech_started("item_1")
    listener.hear(question, 0)
    hangover = [silence(20) for _ in range(25)]  # 500 ms, counted by the VAD as it comes
    for index, chunk in enumerate(hangover):
        listener.hear(chunk, 20 * (index + 1))
    listener.speech_stopped("item_1", question + b"".join(hangover))
    await asyncio.wait_for(listener.understanding("item_1"), 20)
    await listener.aclose()
    assert counting.fed == len(question) + len(silence(MAX_SILENCE_MS))
