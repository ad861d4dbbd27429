"""Streaming pocketsphinx recognition of piper speech; decoder sharing and thread safety."""

from __future__ import annotations

import threading

import pytest

from relay.localmodel.asr import RecognizerModel, SpeechRecognizer
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


def recognize(recognizer: SpeechRecognizer, pcm: bytes, chunk_bytes: int = 960) -> str:
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
