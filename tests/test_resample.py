"""The shared resampler: band kept and aliases removed, steady output per chunk, exact length
after the flush, pcm16 bytes of any length, and a fresh stream after each flush."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from protocol.audio import PCM_RATE_HZ, RECOGNIZER_RATE_HZ
from protocol.resample import PcmResampler, Resampler, resample_pcm
from tests.speech import tone

pytestmark = pytest.mark.unit

BLOCK = 768  # one 32 ms Silero window at 24 kHz


def sine(hz: float, seconds: float = 1.0) -> npt.NDArray[np.float32]:
    t = np.arange(int(PCM_RATE_HZ * seconds)) / PCM_RATE_HZ
    return np.sin(2 * np.pi * hz * t).astype(np.float32)


def to_16k(signal: npt.NDArray[np.float32]) -> list[npt.NDArray[np.float32]]:
    resampler = Resampler(PCM_RATE_HZ, RECOGNIZER_RATE_HZ, np.float32)
    return [resampler.process(signal[i : i + BLOCK]) for i in range(0, signal.size, BLOCK)]


def test_resampler_keeps_the_band_and_removes_aliases() -> None:
    out = np.concatenate(to_16k(sine(1000.0)))[400:]
    # A 1 kHz sine of the same amplitude, whatever its (small) delay: least squares on sin, cos.
    t = np.arange(out.size) / RECOGNIZER_RATE_HZ
    basis = np.stack([np.sin(2 * np.pi * 1000 * t), np.cos(2 * np.pi * 1000 * t)], axis=1)
    fit, *_ = np.linalg.lstsq(basis, out, rcond=None)
    assert np.hypot(*fit) == pytest.approx(1.0, abs=1e-3)
    assert np.abs(basis @ fit - out).max() < 2e-3
    # 7 kHz is still in the 8 kHz band; 10 kHz is above it and must not fold back as 6 kHz.
    assert np.sqrt(np.mean(np.concatenate(to_16k(sine(7000.0)))[400:] ** 2)) > 0.69
    assert np.sqrt(np.mean(np.concatenate(to_16k(sine(10_000.0)))[400:] ** 2)) < 1e-3


def test_resampler_output_is_steady_and_exact_after_the_flush() -> None:
    resampler = Resampler(PCM_RATE_HZ, RECOGNIZER_RATE_HZ, np.float32)
    signal = sine(440.0, 2.0)
    sizes = [resampler.process(signal[i : i + BLOCK]).size for i in range(0, signal.size, BLOCK)]
    # After the first block, every 32 ms in is 32 ms out (what a per-window VAD needs)...
    assert 0 < sizes[0] < 512 and set(sizes[1:-1]) == {512}
    # ...trailing the input by at most 10 ms, which the flush returns.
    assert sum(sizes) >= signal.size * 2 // 3 - 160
    assert sum(sizes) + resampler.flush().size == signal.size * 2 // 3


def test_resampler_delay_is_under_a_millisecond() -> None:
    impulse = np.zeros(PCM_RATE_HZ, dtype=np.float64)
    impulse[PCM_RATE_HZ // 2] = 1.0
    out = Resampler(PCM_RATE_HZ, 8_000, np.float64).process(impulse, last=True)
    assert out.size == 8_000
    assert abs(int(np.argmax(np.abs(out))) - 4_000) <= 8  # 1 ms at 8 kHz


def test_pcm_resampler_carries_odd_bytes_and_starts_anew_after_the_flush() -> None:
    pcm = tone(500, hz=300.0)
    whole = resample_pcm(pcm, PCM_RATE_HZ, RECOGNIZER_RATE_HZ)
    assert len(whole) == len(pcm) * 2 // 3
    resampler = PcmResampler(PCM_RATE_HZ, RECOGNIZER_RATE_HZ)
    for _ in range(2):  # the second stream is not disturbed by the first
        odd = b"".join(resampler.convert(pcm[i : i + 333]) for i in range(0, len(pcm), 333))
        assert odd + resampler.flush() == whole


def test_resample_pcm_converts_a_voice_rate_and_passes_the_model_rate() -> None:
    pcm = tone(1000, hz=300.0)
    assert resample_pcm(pcm, PCM_RATE_HZ, PCM_RATE_HZ) is pcm
    up = resample_pcm(pcm[: 22_050 * 2], 22_050, PCM_RATE_HZ)
    assert len(up) == PCM_RATE_HZ * 2
    rms = np.sqrt(np.mean(np.frombuffer(up, "<i2").astype(np.float64) ** 2))
    assert 20 * np.log10(rms / 32768) == pytest.approx(-13.5, abs=0.2)
