"""Piper and espeak-ng synthesis: 24 kHz output, sentence streaming, stopping, language
selection, clauses."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from localmodel import tts
from localmodel.tts import (
    EspeakSynthesizer,
    PiperSynthesizer,
    SynthesizerUnavailable,
    espeak_voice,
    select_synthesizer,
    split_clauses,
    split_sentences,
)
from localmodel.weights import packaged, sha256_of
from protocol.prosody import analyze_utterance
from tests.weights_support import tampered_package

pytestmark = pytest.mark.unit

THREE_SENTENCES = "Hello, I am Ada. It is three o'clock in the afternoon. How can I help you today?"
CHINESE = "你好，我是小艾。现在是下午三点。"


@pytest.fixture(scope="module")
def piper() -> PiperSynthesizer:
    return PiperSynthesizer()


@pytest.fixture(scope="module")
def espeak() -> EspeakSynthesizer:
    return EspeakSynthesizer("en-us")


def seconds(pcm: bytes) -> float:
    return len(pcm) / 48_000


def assert_speech(pcm: bytes, min_s: float, max_s: float) -> None:
    assert len(pcm) % 2 == 0
    assert min_s < seconds(pcm) < max_s
    tone = analyze_utterance(pcm)
    assert tone.loudness_dbfs > -30.0
    assert tone.voiced_s > 0.2 * tone.duration_s
    peak = np.abs(np.frombuffer(pcm, dtype="<i2")).max()
    assert peak > 3000


class CountingVoice:
    """A PiperVoice stand-in that records what the real voice has produced so far."""

    def __init__(self, voice: Any) -> None:
        self.voice = voice
        self.native: list[bytes] = []

    def synthesize(self, text: str) -> Iterable[Any]:
        for chunk in self.voice.synthesize(text):
            assert chunk.sample_rate == 22_050
            self.native.append(chunk.audio_int16_bytes)
            yield chunk


def test_piper_speaks_24k_speech_of_plausible_length(piper: PiperSynthesizer) -> None:
    # Piper samples its durations (VITS noise), so compare with the very same synthesis.
    voice = CountingVoice(tts._shared_piper_voice())
    pcm = b"".join(PiperSynthesizer(voice).synthesize(THREE_SENTENCES))  # type: ignore[arg-type]
    assert_speech(pcm, 3.0, 9.0)
    native_s = len(b"".join(voice.native)) / 2 / 22_050
    assert seconds(pcm) == pytest.approx(native_s, abs=0.005)


def test_piper_streams_the_first_sentence_before_the_rest(piper: PiperSynthesizer) -> None:
    voice = CountingVoice(tts._shared_piper_voice())
    chunks = PiperSynthesizer(voice).synthesize(THREE_SENTENCES)  # type: ignore[arg-type]
    first = next(chunks)
    assert len(voice.native) == 1
    rest = list(chunks)
    assert len(voice.native) == 3
    assert seconds(first) < 0.5 * seconds(first + b"".join(rest))
    assert_speech(first, 0.5, 3.0)


def test_espeak_streams_sentence_by_sentence(espeak: EspeakSynthesizer) -> None:
    chunks = list(espeak.synthesize(THREE_SENTENCES))
    assert len(chunks) >= 3
    pcm = b"".join(chunks)
    assert_speech(pcm, 3.0, 9.0)
    assert seconds(chunks[0]) < 0.5 * seconds(pcm)


def test_espeak_first_chunk_is_ready_before_later_sentences_are_spoken(
    espeak: EspeakSynthesizer, monkeypatch: pytest.MonkeyPatch
) -> None:
    spoken: list[str] = []
    engine = tts._shared_espeak_engine()
    original = engine.speak

    def speak(voice: str, text: str) -> bytes:
        spoken.append(text)
        return original(voice, text)

    monkeypatch.setattr(engine, "speak", speak)
    chunks = espeak.synthesize(THREE_SENTENCES)
    next(chunks)
    assert spoken == ["Hello, I am Ada."]
    list(chunks)
    assert len(spoken) == 3


def test_espeak_speaks_mandarin_when_asked() -> None:
    # The fallback when Kokoro is not installed (tests/test_kokoro.py: Kokoro otherwise).
    synthesizer = EspeakSynthesizer("zh")
    assert synthesizer.language == "cmn"
    assert_speech(b"".join(synthesizer.synthesize(CHINESE)), 1.5, 8.0)


def test_synthesis_stops_between_sentences(
    piper: PiperSynthesizer, espeak: EspeakSynthesizer
) -> None:
    for synthesizer in (piper, espeak):
        stop = threading.Event()
        chunks = synthesizer.synthesize(THREE_SENTENCES, stop)
        assert_speech(next(chunks), 0.5, 3.0)
        stop.set()
        assert seconds(b"".join(chunks)) < 0.05  # at most the resampler's tail
        assert seconds(b"".join(synthesizer.synthesize(THREE_SENTENCES, stop))) < 0.1


def test_select_synthesizer_prefers_piper_for_english(piper: PiperSynthesizer) -> None:
    assert isinstance(select_synthesizer("en"), PiperSynthesizer)
    assert isinstance(select_synthesizer("en-GB"), PiperSynthesizer)
    assert isinstance(select_synthesizer(None), PiperSynthesizer)
    french = select_synthesizer("fr")
    assert isinstance(french, EspeakSynthesizer)
    assert french.language == "fr"


def test_select_synthesizer_falls_back_to_espeak_without_piper(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def unavailable() -> Any:
        raise SynthesizerUnavailable("not installed")

    monkeypatch.setattr(tts, "_shared_piper_voice", unavailable)
    synthesizer = select_synthesizer("en")
    assert isinstance(synthesizer, EspeakSynthesizer)
    assert_speech(b"".join(synthesizer.synthesize("What time is it?")), 0.5, 3.0)


def test_espeak_threads_share_the_engine_safely() -> None:
    english, chinese = EspeakSynthesizer("en-us"), EspeakSynthesizer("zh")
    # espeak-ng output varies by a few ms between runs: compare lengths, not bytes. Mixed-up
    # voices or buffers between threads would change them far more.
    expected = {
        "en": seconds(b"".join(english.synthesize(THREE_SENTENCES))),
        "zh": seconds(b"".join(chinese.synthesize(CHINESE))),
    }
    results: dict[str, list[float]] = {"en": [], "zh": []}

    def run(key: str, synthesizer: EspeakSynthesizer, text: str) -> None:
        for _ in range(5):
            results[key].append(seconds(b"".join(synthesizer.synthesize(text))))

    threads = [
        threading.Thread(target=run, args=("en", english, THREE_SENTENCES)),
        threading.Thread(target=run, args=("zh", chinese, CHINESE)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(results["en"]) == len(results["zh"]) == 5
    assert results["en"] == pytest.approx([expected["en"]] * 5, rel=0.03)
    assert results["zh"] == pytest.approx([expected["zh"]] * 5, rel=0.03)


def test_empty_text_gives_no_audio(piper: PiperSynthesizer, espeak: EspeakSynthesizer) -> None:
    assert list(piper.synthesize("  ")) == []
    assert list(espeak.synthesize("")) == []


def test_espeak_unknown_voice_is_an_error() -> None:
    with pytest.raises(ValueError):
        EspeakSynthesizer("no-such-voice")


def test_split_sentences_and_voice_names() -> None:
    assert split_sentences(THREE_SENTENCES) == [
        "Hello, I am Ada.",
        "It is three o'clock in the afternoon.",
        "How can I help you today?",
    ]
    assert split_sentences(CHINESE) == ["你好，我是小艾。", "现在是下午三点。"]
    assert split_sentences("no end mark") == ["no end mark"]
    assert split_sentences("7除以2等于3.5。好的") == ["7除以2等于3.5。", "好的"]
    assert split_sentences("Wait... what? Fine.") == ["Wait...", "what?", "Fine."]
    assert split_clauses("我是你的语音助手，很高兴认识你。你好，我是小艾。") == [
        "我是你的语音助手，",
        "很高兴认识你。",
        "你好，我是小艾。",
    ]
    assert split_clauses("It costs 3,000 dollars, more or less, I think. OK") == [
        "It costs 3,000 dollars,",
        "more or less, I think.",
        "OK",
    ]
    assert espeak_voice("zh-CN") == "cmn"
    assert espeak_voice("en") == "en-us"
    assert espeak_voice("de") == "de"


def test_piper_voice_files_match_their_pinned_checksums() -> None:
    for file in (tts.PIPER_JOE_MODEL, tts.PIPER_JOE_CONFIG):
        assert sha256_of(packaged(file)) == file.sha256


def test_a_tampered_piper_voice_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tts.PIPER_JOE_MODEL.package
    tampered_package(tmp_path, package, tts.PIPER_JOE_MODEL.path)
    monkeypatch.delitem(sys.modules, package, raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(SynthesizerUnavailable, match="sha256"):
        tts._shared_piper_voice.__wrapped__()  # type: ignore[attr-defined]
