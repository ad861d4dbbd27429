"""Streaming pocketsphinx recognition of piper speech; decoder sharing, thread safety, and
recognition in child processes (pocketsphinx holds the GIL while it decodes)."""

from __future__ import annotations

import io
import os
import signal
import threading
import time
from collections.abc import Iterator

import pytest

from localmodel.asr import (
    OP_FEED,
    OP_FINISH,
    REQUEST,
    RecognizerModel,
    SpeechRecognizer,
    _RequestQueue,
)
from localmodel.recognizers import (
    RecognizerProcesses,
    RecognizerUnavailable,
    RemoteRecognizer,
)
from tests.speech import chunks, padded, piper_speech, silence

pytestmark = pytest.mark.unit

SENTENCES = {
    "what time is it": {"what", "time", "is", "it"},
    "hello how are you": {"how", "you"},
    "what is two plus three": {"what", "plus", "three"},
}


@pytest.fixture(scope="module")
def model() -> RecognizerModel:
    model = RecognizerModel()
    model.preload()
    return model


@pytest.fixture(scope="module")
def speech() -> dict[str, bytes]:
    # 20 ms chunks of speech with the silence a turn detector leaves around it.
    return {text: padded(piper_speech(text)) for text in SENTENCES}


def recognize(
    recognizer: SpeechRecognizer | RemoteRecognizer, pcm: bytes, chunk_bytes: int = 960
) -> str:
    recognizer.start()
    for chunk in chunks(pcm, chunk_bytes):
        recognizer.feed(chunk)
    return recognizer.finish()


@pytest.mark.parametrize("text", list(SENTENCES))
def test_asr_recognizes_key_words(
    model: RecognizerModel, speech: dict[str, bytes], text: str
) -> None:
    transcript = recognize(SpeechRecognizer(model), speech[text])
    # Contractions count: "how're" has "how".
    words = {part for word in transcript.split() for part in (word, word.split("'")[0])}
    assert SENTENCES[text] <= words, transcript


def test_asr_partial_grows_while_speaking(model: RecognizerModel, speech: dict[str, bytes]) -> None:
    recognizer = SpeechRecognizer(model)
    pcm = speech["what time is it"]
    recognizer.start()
    assert recognizer.partial() == ""
    partials = []
    for chunk in chunks(pcm, 4800):
        recognizer.feed(chunk)
        partials.append(recognizer.partial())
    final = recognizer.finish()
    assert "time" in partials[-1]
    assert any(p and p != partials[-1] for p in partials), partials
    assert "time" in final
    assert recognizer.partial() == ""


def test_asr_any_chunk_size_gives_the_same_transcript(
    model: RecognizerModel, speech: dict[str, bytes]
) -> None:
    pcm = speech["what is two plus three"]
    recognizer = SpeechRecognizer(model)
    # Odd sizes split samples between calls.
    assert recognize(recognizer, pcm, 333) == recognize(recognizer, pcm, 960)


def test_asr_silence_gives_no_words(model: RecognizerModel) -> None:
    assert recognize(SpeechRecognizer(model), silence(1500)) == ""


def test_asr_needs_start(model: RecognizerModel) -> None:
    recognizer = SpeechRecognizer(model)
    assert recognizer.finish() == ""
    with pytest.raises(RuntimeError):
        recognizer.feed(silence(20))


def test_asr_decoders_are_lent_per_utterance(
    model: RecognizerModel, speech: dict[str, bytes]
) -> None:
    shared = RecognizerModel(model.options)
    first, second = SpeechRecognizer(shared), SpeechRecognizer(shared)
    recognize(first, speech["what time is it"])
    recognize(second, speech["what time is it"])
    assert shared.loaded == 1  # one after the other: one decoder
    first.start()
    second.start()
    assert shared.loaded == 2  # overlapping utterances: one each
    first.cancel()
    second.close()
    third = SpeechRecognizer(shared)
    third.start()
    assert shared.loaded == 2
    third.cancel()


def test_asr_sessions_decode_in_parallel_threads(
    model: RecognizerModel, speech: dict[str, bytes]
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


def test_asr_shared_recognizer_threads_do_not_corrupt_it(
    model: RecognizerModel, speech: dict[str, bytes]
) -> None:
    """One recognizer fed from two threads (the worker and a cancel) stays consistent."""
    recognizer = SpeechRecognizer(model)
    pcm = speech["what time is it"]
    recognizer.start()

    def feed() -> None:
        for chunk in chunks(pcm, 960):
            recognizer.feed(chunk)

    feeder = threading.Thread(target=feed)
    feeder.start()
    for _ in range(20):
        recognizer.partial()
    feeder.join(timeout=60)
    assert "time" in recognizer.finish()


def test_asr_cepstral_mean_follows_the_speaker_not_the_decoder(
    model: RecognizerModel, speech: dict[str, bytes]
) -> None:
    shared = RecognizerModel(model.options)
    first, second = SpeechRecognizer(shared), SpeechRecognizer(shared)
    recognize(first, speech["what time is it"])
    second.start()  # borrows the decoder `first` adapted to its voice
    decoder = second._decoder
    assert decoder is not None
    assert decoder.get_cmn(False).startswith(shared.options.cmn_init + ",")
    second.cancel()
    first.start()
    decoder = first._decoder
    assert decoder is not None
    assert not decoder.get_cmn(False).startswith(shared.options.cmn_init + ",")
    first.cancel()


@pytest.fixture(scope="module")
def processes() -> Iterator[RecognizerProcesses]:
    processes = RecognizerProcesses(1)
    processes.preload()
    yield processes
    processes.close()


def test_asr_in_a_child_process_matches_in_process(
    model: RecognizerModel, speech: dict[str, bytes], processes: RecognizerProcesses
) -> None:
    remote = processes.recognizer()
    pcm = speech["what is two plus three"]
    assert remote.partial() == "" and remote.finish() == ""
    remote.start()
    for chunk in chunks(pcm, 960):
        remote.feed(chunk)
    assert "plus" in remote.partial()
    assert remote.finish() == recognize(SpeechRecognizer(model), pcm)
    # The stream stays open on its process for the next utterance.
    assert recognize(remote, speech["what time is it"]).endswith("it")
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


def test_asr_model_loads_and_trims_to_a_count(model: RecognizerModel) -> None:
    shared = RecognizerModel(model.options)
    shared.ensure_loaded(2)
    assert shared.loaded == 2
    lent = shared.acquire()
    shared.ensure_loaded(2)
    assert shared.loaded == 2
    shared.trim(0)  # only idle decoders go
    assert shared.loaded == 1
    shared.release(lent)
    shared.trim(0)
    assert shared.loaded == 0


def test_asr_process_serves_an_ended_utterance_first() -> None:
    def request(op: int, stream: int) -> bytes:
        return REQUEST.pack(op, stream, 0, 2) + b"\x00\x00"

    order = [(OP_FEED, 1), (OP_FEED, 2), (OP_FEED, 1), (OP_FEED, 2), (OP_FINISH, 2), (OP_FEED, 1)]
    queue = _RequestQueue(io.BytesIO(b"".join(request(op, stream) for op, stream in order)))
    for _ in range(500):  # until its thread has read everything
        if queue._closed:
            break
        time.sleep(0.01)
    batches: list[list[tuple[int, int]]] = []
    while (batch := queue.next_batch()) is not None:
        batches.append([(op, stream) for op, stream, _, _ in batch])
    assert batches == [
        [(OP_FEED, 2), (OP_FEED, 2), (OP_FINISH, 2)],  # stream 2's turn has ended: it goes first
        [(OP_FEED, 1)],  # the others, a request at a time, round-robin
        [(OP_FEED, 1)],
        [(OP_FEED, 1)],
    ]
