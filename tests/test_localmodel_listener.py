"""UtteranceListener: streaming recognition of a session's utterances on its own thread.

Pins: stable words go out as increments while the user speaks and the final transcript when
the utterance is committed; a pause hands the words so far (and their tone) to the model;
discarded utterances never resolve; a recognizer failure becomes a `failed` event and an empty
understanding instead of hanging the response; and the thread ends with the listener.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import TypeVar

import pytest

from localmodel.asr import RecognizerModel, SpeechRecognizer
from localmodel.listener import MAX_SILENCE_MS, PAUSE_MS, UtteranceListener, _Utterance
from localmodel.models import (
    InputEvent,
    InputTone,
    InputTranscriptDelta,
    InputTranscriptDone,
    InputTranscriptFailed,
)
from tests.speech import chunks, padded, piper_speech, silence

from .conftest import wait_until

pytestmark = pytest.mark.unit

E = TypeVar("E", bound=InputEvent)


@pytest.fixture(scope="module")
def model() -> RecognizerModel:
    model = RecognizerModel()
    model.preload()
    return model


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


def test_stable_increment_sends_only_words_two_reads_agree_on() -> None:
    utterance = _Utterance()
    assert utterance.stable_increment("what") == ""
    assert utterance.stable_increment("what time") == "what"
    assert utterance.stable_increment("what time is") == " time"
    # A revision of words already sent stops the deltas: they cannot be taken back.
    assert utterance.stable_increment("but time is it") == ""
    assert utterance.stable_increment("but time is it") == ""
    utterance.reset("next")
    assert utterance.stable_increment("hello there") == ""
    assert utterance.stable_increment("hello there") == "hello there"


async def test_listener_streams_deltas_then_the_final_transcript(
    model: RecognizerModel, question: bytes, recorder: Recorder
) -> None:
    listener = recorder.listen(lambda: SpeechRecognizer(model))
    listener.speech_started("item_1")
    await speak(listener, question)
    listener.speech_stopped("item_1", question)
    heard = await asyncio.wait_for(listener.understanding("item_1"), 20)
    await asyncio.sleep(0.05)  # the tone event follows its own thread
    await listener.aclose()

    assert {"time", "is", "it"} <= set(heard.transcript.split()), heard.transcript
    assert heard.tone is not None and heard.tone.voiced_s > 0.5
    deltas = recorder.of(InputTranscriptDelta)
    assert deltas, "no transcript delta while speaking"
    assert {event.item_id for event in recorder.events} == {"item_1"}
    done = recorder.of(InputTranscriptDone)
    assert [event.transcript for event in done] == [heard.transcript]
    assert len(recorder.of(InputTone)) == 1
    # Deltas come before the final transcript, and no pause was reported.
    assert recorder.events.index(deltas[-1]) < recorder.events.index(done[0])
    assert recorder.pauses == []
    assert listener_threads() == []


async def test_listener_reports_the_words_so_far_at_a_pause(
    model: RecognizerModel, question: bytes, recorder: Recorder
) -> None:
    listener = recorder.listen(lambda: SpeechRecognizer(model))
    listener.speech_started("item_1")
    await speak(listener, question, pace_s=0)
    listener.hear(silence(100), PAUSE_MS - 1)
    listener.hear(silence(100), PAUSE_MS)
    listener.hear(silence(100), PAUSE_MS + 100)  # one report per pause
    await wait_until(lambda: recorder.pauses, timeout_s=20)
    listener.speech_stopped("item_1", question)
    heard = await asyncio.wait_for(listener.understanding("item_1"), 20)
    await listener.aclose()

    assert recorder.pauses == [("item_1", heard.transcript)]


async def test_listener_discarded_utterance_is_forgotten(
    model: RecognizerModel, question: bytes, recorder: Recorder
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
    model: RecognizerModel, question: bytes, recorder: Recorder
) -> None:
    listener = recorder.listen(lambda: BrokenRecognizer(model))
    listener.speech_stopped("item_1", question)
    heard = await asyncio.wait_for(listener.understanding("item_1"), 20)
    await listener.aclose()
    assert heard.transcript == ""
    failed = recorder.of(InputTranscriptFailed)
    assert len(failed) == 1 and "decoder crashed" in failed[0].message


class CountingRecognizer(SpeechRecognizer):
    fed = 0

    def feed(self, pcm24k: bytes) -> None:
        CountingRecognizer.fed += len(pcm24k)
        super().feed(pcm24k)


async def test_listener_does_not_decode_long_trailing_silence(
    model: RecognizerModel, question: bytes, recorder: Recorder
) -> None:
    listener = recorder.listen(lambda: CountingRecognizer(model))
    listener.speech_started("item_1")
    listener.hear(question, 0)
    hangover = [silence(20) for _ in range(25)]  # 500 ms, counted by the VAD as it comes
    for index, chunk in enumerate(hangover):
        listener.hear(chunk, 20 * (index + 1))
    listener.speech_stopped("item_1", question + b"".join(hangover))
    await asyncio.wait_for(listener.understanding("item_1"), 20)
    await listener.aclose()
    assert CountingRecognizer.fed == len(question) + len(silence(MAX_SILENCE_MS))
