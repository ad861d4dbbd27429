"""Whisper recognition (localmodel/whisper.py): accuracy on synthesized English and Mandarin,
nothing invented from noise or silence, bounded decoding, and weights checked before loading.

Bounds measured on this machine (benchmarks/whisper_window.py has the numbers per window and
model): word errors 1.4-5.6 % per voice, Mandarin character errors 2.8 % (the assistant's own
Kokoro voice reading Mandarin phonemes: its pronunciation errors count too).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ctranslate2")
pytest.importorskip("faster_whisper")

from localmodel import whisper  # noqa: E402
from localmodel.weights import MODEL_DIR_ENV, PackagedFile, WeightsError, packaged  # noqa: E402
from localmodel.whisper import BASE, Transcript, WhisperRecognizer, WhisperWeights  # noqa: E402
from protocol.resample import resample_pcm  # noqa: E402
from tests.speech import (  # noqa: E402
    flite_speech,
    mandarin_speech,
    pink_noise,
    piper_speech,
    silence,
    white_noise,
)
from tests.transcripts import (  # noqa: E402
    ENGLISH_QUESTIONS,
    MANDARIN_SENTENCES,
    char_error_rate,
    english_words,
    traditional_characters,
    word_error_rate,
)

pytestmark = pytest.mark.unit

MAX_WER = 0.10  # per voice; measured 1.4 % (piper), 5.6 % (flite slt), 4.2 % (flite rms)
MAX_CER = 0.10  # measured 2.8 % on the six sentences (the assistant's own Kokoro voice)


@pytest.fixture(scope="module")
def recognizer() -> WhisperRecognizer:
    return WhisperRecognizer()


def to_16k(pcm24k: bytes) -> np.ndarray:
    samples = np.frombuffer(resample_pcm(pcm24k, 24_000, 16_000), "<i2")
    return samples.astype(np.float32) / 32768


def transcribe(recognizer: WhisperRecognizer, pcm24k: bytes, language: str | None = None) -> str:
    return recognizer.transcribe(to_16k(pcm24k), language).text


@pytest.mark.parametrize("voice", ["piper", "slt", "rms"])
def test_whisper_english_word_error_rate(
    recognizer: WhisperRecognizer, voice: str, tmp_path: Path
) -> None:
    clips = [
        piper_speech(q) if voice == "piper" else flite_speech(q, tmp_path, voice)
        for q in ENGLISH_QUESTIONS
    ]
    heard = [recognizer.transcribe(to_16k(clip)) for clip in clips]
    assert {t.language for t in heard} == {"en"}
    texts = [t.text for t in heard]
    assert word_error_rate(ENGLISH_QUESTIONS, texts) <= MAX_WER, texts


def test_whisper_hears_eight_in_seven_times_eight(recognizer: WhisperRecognizer) -> None:
    text = transcribe(recognizer, piper_speech("What is seven times eight?"))
    assert english_words(text) == ["what", "is", "seven", "times", "eight"], text


def test_whisper_mandarin_character_error_rate_in_simplified_characters(
    recognizer: WhisperRecognizer,
) -> None:
    heard = [recognizer.transcribe(to_16k(mandarin_speech(s))) for s in MANDARIN_SENTENCES]
    texts = [t.text for t in heard]
    assert [t.language for t in heard] == ["zh"] * len(heard), texts
    assert char_error_rate(MANDARIN_SENTENCES, texts) <= MAX_CER, texts
    assert traditional_characters("".join(texts)) == "", texts


def test_whisper_uses_a_fixed_language(recognizer: WhisperRecognizer) -> None:
    pcm = piper_speech("What time is it?")
    assert recognizer.transcribe(to_16k(pcm), "en").language == "en"
    # Told Mandarin, it writes Chinese (a translation or a transliteration), never English.
    forced = recognizer.transcribe(to_16k(mandarin_speech("现在几点了？")), "zh")
    assert forced.language == "zh" and forced.text


@pytest.mark.parametrize(
    "noise",
    [silence(2000), white_noise(2000, -30), pink_noise(2000, -25), white_noise(3000, -50, seed=3)],
    ids=["silence", "white", "pink", "quiet-white"],
)
def test_whisper_invents_nothing_from_noise(recognizer: WhisperRecognizer, noise: bytes) -> None:
    assert transcribe(recognizer, noise) == ""


def test_whisper_too_short_audio_is_not_worth_a_pass(recognizer: WhisperRecognizer) -> None:
    assert recognizer.transcribe(np.zeros(1000, np.float32)) == Transcript("", "en")


def test_whisper_window_is_the_utterance_rounded_up() -> None:
    assert whisper.window_frames(150) == 300  # 1.5 s + 1 s margin -> 3 s
    assert whisper.window_frames(200) == 300
    assert whisper.window_frames(201) == 400
    assert whisper.window_frames(2950) == 3000  # never more than Whisper's 30 s


def test_whisper_cuts_a_restart_in_the_padding() -> None:
    assert whisper._without_restart("What is 2 plus 3? What is") == "What is 2 plus 3?"
    assert whisper._without_restart("你好。你") == "你好。"
    kept = "What is 2 plus 3? What is 4 plus 5?"
    assert whisper._without_restart(kept) == kept


def test_whisper_maps_traditional_slips_to_simplified() -> None:
    assert whisper.simplified("這個時間說話") == "这个时间说话"
    assert whisper.simplified("你好") == "你好"


def test_whisper_decoding_is_capped(recognizer: WhisperRecognizer) -> None:
    """Garbled speech (reversed, sped up) gives bounded text, not a loop."""
    garbled = to_16k(piper_speech("Tell me a joke about seven times eight. " * 3))[::-1]
    heard = recognizer.transcribe(np.ascontiguousarray(garbled))
    seconds = len(garbled) / 16_000
    assert len(heard.text.split()) <= whisper.TOKENS_PER_S * seconds + whisper.MIN_TOKENS


def test_whisper_weights_verify_and_a_tampered_copy_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for file in BASE.files():
        packaged(file)  # raises WeightsError on a mismatch
    # A package whose config.json differs by one byte: refused before anything is loaded.
    package = tmp_path / "tampered_whisper"
    shutil.copytree(BASE.config.location().parent, package / "data", dirs_exist_ok=True)
    shutil.copy(BASE.model_parts[1].location(), package / "data" / "model.bin.part2")
    (package / "__init__.py").write_text("")
    config = package / "data" / "config.json"
    config.write_bytes(config.read_bytes().replace(b"50259", b"50258", 1))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(MODEL_DIR_ENV, str(tmp_path / "models"))
    sys.modules.pop("tampered_whisper", None)
    tampered = WhisperWeights(
        name="tampered",
        model_parts=tuple(
            PackagedFile("tampered_whisper", f"data/{Path(p.path).name}", p.sha256)
            for p in BASE.model_parts
        ),
        model_sha256=BASE.model_sha256,
        config=PackagedFile("tampered_whisper", "data/config.json", BASE.config.sha256),
        tokenizer=PackagedFile("tampered_whisper", "data/tokenizer.json", BASE.tokenizer.sha256),
        vocabulary=PackagedFile("tampered_whisper", "data/vocabulary.txt", BASE.vocabulary.sha256),
        multilingual=True,
    )
    with pytest.raises(WeightsError, match="config.json"):
        WhisperRecognizer(tampered)
    # A tampered copy in the model directory is joined again from the checked parts.
    directory = whisper.model_directory(BASE)
    (directory / "vocabulary.txt").write_text("tampered")
    assert whisper.model_directory(BASE) == directory
    assert (directory / "vocabulary.txt").read_bytes() == BASE.vocabulary.location().read_bytes()
