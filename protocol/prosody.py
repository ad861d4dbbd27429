"""Tone-of-voice features of one user utterance: pitch, loudness and speaking rate."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt

from .audio import PCM_RATE_HZ
from .events import ServerEvent
from .resample import Resampler

# Pitch is tracked on an 8 kHz copy: speech F0 and the first formants fit below 4 kHz, and the
# YIN work per frame shrinks ninefold.
_PITCH_RATE_HZ = 8_000
_DECIMATE = PCM_RATE_HZ // _PITCH_RATE_HZ
_HOP = _PITCH_RATE_HZ // 100  # 10 ms
_HOP_S = _HOP / _PITCH_RATE_HZ
_MIN_F0_HZ = 60.0
_MAX_F0_HZ = 500.0
_WINDOW = 200  # 25 ms YIN integration window
_TAU_MIN = int(_PITCH_RATE_HZ / _MAX_F0_HZ)
_TAU_MAX = int(_PITCH_RATE_HZ / _MIN_F0_HZ) + 1
_FRAME = _WINDOW + _TAU_MAX + 1
_NFFT = 1 << (_FRAME - 1).bit_length()  # lags stay below _FRAME: no circular wrap
_YIN_THRESHOLD = 0.25
_OCTAVE_MIN_DIP = 0.1
_OCTAVE_RATIO = 0.8

_SILENCE_DBFS = -100.0
_GATE_DBFS = -55.0  # frames quieter than this are never speech
_ACTIVE_RANGE_DB = 35.0  # active = within this many dB of the loudest frame
_NUCLEUS_RANGE_DB = 25.0  # syllable peaks must be within this many dB of the loudest frame
_NUCLEUS_DIP_DB = 2.0  # and rise this far above the dip before them (de Jong & Wempe 2009)
_NUCLEUS_MIN_GAP_S = 0.08
_MIN_SPAN_S = 0.25

_FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ToneFeatures:
    """Pitch, loudness and rate of one utterance; pitch fields are None without voiced frames."""

    duration_s: float
    voiced_s: float
    pitch_median_hz: float | None
    pitch_range_hz: float | None  # 10th to 90th percentile spread of voiced F0
    loudness_dbfs: float  # RMS of voiced frames; a full-scale square wave is 0 dBFS
    speaking_rate_sps: float  # syllable nuclei per second of active speech
    syllables: int

    def to_event(self) -> dict[str, object]:
        fields: dict[str, object] = {
            key: round(value, 2) if isinstance(value, float) else value
            for key, value in asdict(self).items()
        }
        return {"type": ServerEvent.TONE.value, **fields}


def analyze_utterance(pcm24k: bytes) -> ToneFeatures:
    """Measure the tone features of pcm16 24 kHz mono audio."""
    samples = np.frombuffer(pcm24k[: len(pcm24k) // 2 * 2], dtype="<i2").astype(np.float64)
    samples /= 32768.0
    duration_s = samples.size / PCM_RATE_HZ
    if samples.size < _WINDOW * _DECIMATE:
        return ToneFeatures(
            duration_s, 0.0, None, None, _dbfs_scalar(_mean_square(samples)), 0.0, 0
        )
    low = Resampler(PCM_RATE_HZ, _PITCH_RATE_HZ, np.float64).process(samples, last=True)
    # Zero padding lets the last YIN windows reach the end of the audio.
    low = np.pad(low, (0, _FRAME - _WINDOW))
    frames = np.lib.stride_tricks.sliding_window_view(low, _FRAME)[::_HOP]
    # Energy of the YIN window of each frame, then of the full-band signal at the same place.
    frame_ms = np.mean(frames[:, :_WINDOW] ** 2, axis=1)
    full_ms = _full_band_mean_square(samples, frames.shape[0])
    frame_db = _dbfs(full_ms)
    active = (frame_db > _GATE_DBFS) & (frame_db > frame_db.max() - _ACTIVE_RANGE_DB)

    f0 = _yin(frames)
    voiced = ~np.isnan(f0) & active
    voiced_f0 = f0[voiced]
    pitch_median = float(np.median(voiced_f0)) if voiced_f0.size else None
    pitch_range = (
        float(np.percentile(voiced_f0, 90) - np.percentile(voiced_f0, 10))
        if voiced_f0.size
        else None
    )
    loud_frames = full_ms[voiced] if voiced.any() else full_ms[active]
    loudness = _dbfs_scalar(float(np.mean(loud_frames))) if loud_frames.size else _SILENCE_DBFS

    syllables = _count_nuclei(frame_ms, voiced)
    active_idx = np.flatnonzero(active)
    span_s = float(active_idx[-1] - active_idx[0] + 1) * _HOP_S if active_idx.size else 0.0
    rate = float(syllables / max(span_s, _MIN_SPAN_S)) if syllables else 0.0
    return ToneFeatures(
        duration_s=duration_s,
        voiced_s=float(voiced.sum()) * _HOP_S,
        pitch_median_hz=pitch_median,
        pitch_range_hz=pitch_range,
        loudness_dbfs=loudness,
        speaking_rate_sps=rate,
        syllables=syllables,
    )


def _yin(frames: _FloatArray) -> _FloatArray:
    """F0 per frame in Hz (NaN where unvoiced), YIN (de Cheveigné & Kawahara 2002) in batch."""
    window = frames[:, :_WINDOW]
    spectrum = np.fft.rfft(frames, _NFFT) * np.conj(np.fft.rfft(window, _NFFT))
    corr = np.fft.irfft(spectrum, _NFFT)[:, : _TAU_MAX + 1]
    squares = np.cumsum(np.pad(frames**2, ((0, 0), (1, 0))), axis=1)
    lagged_energy = squares[:, _WINDOW : _WINDOW + _TAU_MAX + 1] - squares[:, : _TAU_MAX + 1]
    diff = np.maximum(lagged_energy[:, :1] + lagged_energy - 2 * corr, 0.0)
    taus = np.arange(1, _TAU_MAX + 1)
    cumulative = np.cumsum(diff[:, 1:], axis=1)
    cmndf = np.ones_like(diff)
    cmndf[:, 1:] = diff[:, 1:] * taus / np.maximum(cumulative, 1e-12)

    search = cmndf[:, _TAU_MIN:_TAU_MAX]
    below = search < _YIN_THRESHOLD
    has_dip = below.any(axis=1)
    first = np.argmax(below, axis=1)
    # From the first dip under the threshold, walk down to its local minimum.
    rising = np.zeros_like(below)
    rising[:, :-1] = search[:, 1:] >= search[:, :-1]
    rising[:, -1] = True
    after_first = np.arange(search.shape[1]) >= first[:, None]
    best = np.argmax(rising & after_first, axis=1)

    rows = np.arange(search.shape[0])
    lag = best + _TAU_MIN
    # A high threshold lets a dip at half the period through (an octave too high): take the
    # double lag when it is clearly more periodic. Clean tones (dip near 0) are left alone.
    double = np.clip(2 * lag[:, None] + np.arange(-2, 3), 0, _TAU_MAX)
    double_values = cmndf[rows[:, None], double]
    nearest = np.argmin(double_values, axis=1)
    octave_down = (
        (2 * lag + 2 <= _TAU_MAX)
        & (cmndf[rows, lag] > _OCTAVE_MIN_DIP)
        & (double_values[rows, nearest] < _OCTAVE_RATIO * cmndf[rows, lag])
    )
    lag = np.where(octave_down, double[rows, nearest], lag)
    tau = lag.astype(np.float64)
    left = cmndf[rows, np.clip(lag - 1, 0, _TAU_MAX)]
    mid = cmndf[rows, lag]
    right = cmndf[rows, np.clip(lag + 1, 0, _TAU_MAX)]
    curvature = left - 2 * mid + right
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = np.where(np.abs(curvature) > 1e-12, 0.5 * (left - right) / curvature, 0.0)
    tau += np.clip(shift, -0.5, 0.5)
    return np.where(has_dip, _PITCH_RATE_HZ / tau, np.nan)


def _full_band_mean_square(samples: _FloatArray, count: int) -> _FloatArray:
    """Mean square of the 24 kHz signal over each pitch frame's window."""
    hop = _HOP * _DECIMATE
    window = _WINDOW * _DECIMATE
    squares = np.concatenate(([0.0], np.cumsum(samples**2)))
    starts = np.arange(count) * hop
    ends = np.minimum(starts + window, samples.size)
    return np.asarray((squares[ends] - squares[starts]) / np.maximum(ends - starts, 1))


def _count_nuclei(frame_ms: _FloatArray, voiced: npt.NDArray[np.bool_]) -> int:
    """Syllable nuclei: voiced peaks of the smoothed energy envelope with a dip before them."""
    if frame_ms.size < 3:
        return 0
    # The 25 ms frames overlapping by 15 ms already smooth the envelope enough.
    envelope = _dbfs(frame_ms)
    floor = max(float(envelope.max()) - _NUCLEUS_RANGE_DB, _GATE_DBFS)
    peaks = (
        np.flatnonzero(
            (envelope[1:-1] > envelope[:-2])
            & (envelope[1:-1] >= envelope[2:])
            & (envelope[1:-1] > floor)
        )
        + 1
    )
    near_voiced = np.convolve(voiced.astype(np.float64), np.ones(5), mode="same") > 0
    min_gap = round(_NUCLEUS_MIN_GAP_S / _HOP_S)
    nuclei: list[int] = []
    for peak in peaks:
        if not near_voiced[peak]:
            continue
        if not nuclei:
            nuclei.append(int(peak))
            continue
        previous = nuclei[-1]
        dip = float(envelope[previous : peak + 1].min())
        separate = peak - previous >= min_gap and envelope[peak] - dip >= _NUCLEUS_DIP_DB
        if separate:
            nuclei.append(int(peak))
        elif envelope[peak] > envelope[previous]:
            nuclei[-1] = int(peak)
    # A steady voiced sound has no peak but is still one syllable.
    return len(nuclei) or int(bool(voiced.any()))


def _mean_square(samples: _FloatArray) -> float:
    return float(np.mean(samples**2)) if samples.size else 0.0


def _dbfs(mean_square: _FloatArray) -> _FloatArray:
    floor = 10 ** (_SILENCE_DBFS / 10)
    return np.asarray(10 * np.log10(np.maximum(mean_square, floor)), dtype=np.float64)


def _dbfs_scalar(mean_square: float) -> float:
    return float(10 * math.log10(max(mean_square, 10 ** (_SILENCE_DBFS / 10))))


__all__ = ["ToneFeatures", "analyze_utterance"]
