"""Whisper recognition of piper speech per stream (asr.SpeechRecognizer), and recognition in
child processes (recognizers.py): a pass would hold this process's GIL and a core."""

from __future__ import annotations

import io
import os
import signal
import threading
import time
from collections.abc import Iterator

import pytest

pytest.importorskip("ctranslate2")

from localmodel.asr import (  # noqa: E402
    OP_FEED,
    OP_FINISH,
    OP_PARTIAL,
    OP_PAUSE,
    REQUEST,
    SpeechRecognizer,
    _RequestQueue,
    shared_whisper,
)
from localmodel.recognizers import (  # noqa: E402
    RecognizerProcesses,
    RecognizerUnavailable,
    RemoteRecognizer,
)
from localmodel.whisper import WhisperRecognizer  # noqa: E402
from tests.speech import chunks, padded, piper_speech, silence  # noqa: E402
from tests.transcripts import english_words  # noqa: E402

pytestmark = pytest.mark.unit

SENTENCES = ("what time is it", "hello how are you", "what is two plus three")


@pytest.fixture(scope="module")
def model() -> WhisperRecognizer:
    return shared_whisper()


@pytest.fixture(scope="module")
def speech() -> dict[str, bytes]:
    # Speech with the silence a turn detector leaves around it.
    return {text: padded(piper_speech(text)) for text in SENTENCES}


def recognize(
    recognizer: SpeechRecognizer | RemoteRecognizer, pcm: bytes, chunk_bytes: int = 960
) -> str:
    recognizer.start()
    for chunk in chunks(pcm, chunk_bytes):
        recognizer.feed(chunk)
    return recognizer.finish()


class CountingModel:
    """A WhisperRecognizer that counts its passes."""

    def __init__(self, model: WhisperRecognizer) -> None:
        self.model = model
        self.passes = 0

    def transcribe(self, *args: object, **kwargs: object) -> object:
        self.passes += 1
        return self.model.transcribe(*args, **kwargs)


@pytest.mark.parametrize("text", SENTENCES)
def test_asr_recognizes_the_words(
    model: WhisperRecognizer, speech: dict[str, bytes], text: str
) -> None:
    transcript = recognize(SpeechRecognizer(model), speech[text])
    assert english_words(transcript) == text.split(), transcript


def test_asr_partial_is_a_pass_over_the_words_so_far_and_finish_reuses_it(
    model: WhisperRecognizer, speech: dict[str, bytes]
) -> None:
    counting = CountingModel(model)
    recognizer = SpeechRecognizer(counting)
    pcm = speech["what is two plus three"]
    recognizer.start()
    assert recognizer.partial() == ""  # nothing to hear yet: no pass
    half = len(pcm) // 2 // 2 * 2
    recognizer.feed(pcm[:half])
    first = recognizer.partial()
    recognizer.feed(pcm[half:])
    whole = recognizer.partial()
    assert recognizer.partial() == whole  # no new audio: the same pass
    assert counting.passes == 2
    assert recognizer.finish() == whole  # and finish() keeps it: no second pass
    assert counting.passes == 2
    assert english_words(whole) == "what is two plus three".split()
    assert first and english_words(first) != english_words(whole)
    assert recognizer.partial() == "" and not recognizer.active


def test_asr_any_chunk_size_gives_the_same_transcript(
    model: WhisperRecognizer, speech: dict[str, bytes]
) -> None:
    pcm = speech["what is two plus three"]
    recognizer = SpeechRecognizer(model)
    # Odd sizes split samples between calls.
    assert recognize(recognizer, pcm, 333) == recognize(recognizer, pcm, 960)


def test_asr_silence_gives_no_words(model: WhisperRecognizer) -> None:
    assert recognize(SpeechRecognizer(model), silence(1500)) == ""


def test_asr_needs_start(model: WhisperRecognizer) -> None:
    recognizer = SpeechRecognizer(model)
    assert recognizer.finish() == ""
    with pytest.raises(RuntimeError):
        recognizer.feed(silence(20))


def test_asr_streams_share_the_model_from_threads(
    model: WhisperRecognizer, speech: dict[str, bytes]
) -> None:
    texts = ["what time is it", "what is two plus three"]
    expected = {text: recognize(SpeechRecognizer(model), speech[text]) for text in texts}
    results: dict[str, str] = {}
    errors: list[BaseException] = []

    def run(text: str) -> None:
        try:
            results[text] = recognize(SpeechRecognizer(model), speech[text])
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(text,)) for text in texts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    assert results == expected


@pytest.fixture(scope="module")
def processes() -> Iterator[RecognizerProcesses]:
    processes = RecognizerProcesses(1)
    processes.preload()
    yield processes
    processes.close()


def test_asr_in_a_child_process_matches_in_process(
    model: WhisperRecognizer, speech: dict[str, bytes], processes: RecognizerProcesses
) -> None:
    remote = processes.recognizer()
    pcm = speech["what is two plus three"]
    assert remote.partial() == "" and remote.finish() == ""
    remote.start()
    for chunk in chunks(pcm, 960):
        remote.feed(chunk)
    assert "plus" in remote.request_partial(urgent=True).result(20)
    assert remote.finish() == recognize(SpeechRecognizer(model), pcm)
    # The stream stays open on its process for the next utterance, in a fixed language.
    remote.start("en")
    for chunk in chunks(speech["what time is it"], 960):
        remote.feed(chunk)
    assert english_words(remote.finish()) == "what time is it".split()
    remote.close()
    with pytest.raises(RuntimeError):
        remote.feed(silence(20))


def test_asr_child_process_death_fails_the_utterance_then_recovers(
    speech: dict[str, bytes],
) -> None:
    processes = RecognizerProcesses(1)
    try:
        remote = processes.recognizer()
        remote.start()
        remote.feed(speech["what time is it"][:24_000])
        (pid,) = processes.pids()
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(RecognizerUnavailable):
            for _ in range(100):  # until the reader thread has seen the process end
                remote.feed(silence(20))
                time.sleep(0.01)
            remote.finish()
        assert "time" in recognize(remote, speech["what time is it"])
        assert processes.pids() != [pid]
        remote.close()
    finally:
        processes.close()
    assert processes.pids() == []


def read_all(order: list[tuple[int, int]]) -> _RequestQueue:
    def request(op: int, stream: int) -> bytes:
        return REQUEST.pack(op, stream, 0, 2) + b"\x00\x00"

    queue = _RequestQueue(io.BytesIO(b"".join(request(op, stream) for op, stream in order)))
    for _ in range(500):  # until its thread has read everything
        if queue._closed:
            break
        time.sleep(0.01)
    return queue


def batches_of(queue: _RequestQueue) -> list[list[tuple[int, int]]]:
    batches: list[list[tuple[int, int]]] = []
    while (batch := queue.next_batch()) is not None:
        batches.append([(op, stream) for op, stream, _, _ in batch])
    return batches


def test_asr_process_serves_a_waiting_user_first() -> None:
    queue = read_all(
        [(OP_FEED, 1), (OP_FEED, 2), (OP_PARTIAL, 1), (OP_FEED, 2), (OP_PAUSE, 2), (OP_FEED, 1)]
        + [(OP_FEED, 3), (OP_FINISH, 3)]
    )
    assert batches_of(queue) == [
        [(OP_FEED, 2), (OP_FEED, 2), (OP_PAUSE, 2)],  # stream 2 paused: its user may be done
        [(OP_FEED, 3), (OP_FINISH, 3)],  # stream 3's turn has ended
        [(OP_FEED, 1), (OP_PARTIAL, 1), (OP_FEED, 1)],  # the others, a stream at a time
    ]


def test_asr_process_knows_a_stale_pass() -> None:
    queue = read_all([(OP_FEED, 1), (OP_PAUSE, 1), (OP_FEED, 1), (OP_FINISH, 1), (OP_FEED, 2)])
    first = queue.next_batch()
    assert first is not None and [op for op, _, _, _ in first] == [OP_FEED, OP_PAUSE]
    assert queue.queued_pass(1)  # the pause pass is stale: the finish will hear it all
    assert not queue.queued_pass(2)
