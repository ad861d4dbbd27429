"""The one sample-rate converter: libsoxr (python-soxr) streams, for arrays or pcm16 bytes.

Every conversion goes through it: 24 kHz protocol audio to the recognizers' 16 kHz, a voice's
own rate to 24 kHz, 24 kHz to the pitch tracker's 8 kHz, and test speech to 24 kHz.
"""

from __future__ import annotations

from typing import Generic, TypeVar

import numpy as np
import numpy.typing as npt
import soxr

Sample = TypeVar("Sample", np.int16, np.float32, np.float64)


class Resampler(Generic[Sample]):
    """Stateful mono conversion of one stream of `dtype` samples, chunk by chunk.

    libsoxr's variable-rate engine: its output trails the input by a constant ~10 ms and comes
    steadily with every chunk, where the fixed-rate engine emits bursts up to 36 ms late, too
    late for a 32 ms VAD window. Both keep aliases below -100 dB; `last=True` flushes the tail.
    """

    def __init__(self, in_rate_hz: int, out_rate_hz: int, dtype: type[Sample]) -> None:
        self.in_rate_hz = in_rate_hz
        self.out_rate_hz = out_rate_hz
        self._empty: npt.NDArray[Sample] = np.zeros(0, dtype=dtype)
        self._stream = soxr.ResampleStream(in_rate_hz, out_rate_hz, 1, dtype=dtype, vr=True)

    def process(self, samples: npt.NDArray[Sample], last: bool = False) -> npt.NDArray[Sample]:
        """The output so far for `samples`; `last` ends the stream and starts a new one."""
        out: npt.NDArray[Sample] = self._stream.resample_chunk(samples, last=last)
        if last:
            self._stream.clear()
        return out

    def flush(self) -> npt.NDArray[Sample]:
        return self.process(self._empty, last=True)

    def reset(self) -> None:
        """Forget the stream so far (its history and pending output)."""
        self._stream.clear()


class PcmResampler:
    """A `Resampler` for pcm16 little-endian mono bytes of any length (odd bytes carry over).

    It works in float32 and rounds: libsoxr's own int16 output is dithered, which makes the
    result depend on where the chunks split (by up to 2 LSB).
    """

    def __init__(self, in_rate_hz: int, out_rate_hz: int) -> None:
        self._resampler = Resampler(in_rate_hz, out_rate_hz, np.float32)
        self._odd_byte = b""

    def convert(self, pcm: bytes) -> bytes:
        if self._odd_byte:
            pcm, self._odd_byte = self._odd_byte + pcm, b""
        if len(pcm) % 2:
            pcm, self._odd_byte = pcm[:-1], pcm[-1:]
        if not pcm:
            return b""
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
        return _pcm(self._resampler.process(samples))

    def flush(self) -> bytes:
        """The rest of the stream (a dangling odd byte is dropped); the next convert starts anew."""
        self._odd_byte = b""
        return _pcm(self._resampler.flush())

    def reset(self) -> None:
        self._odd_byte = b""
        self._resampler.reset()


def resample_pcm(pcm: bytes, in_rate_hz: int, out_rate_hz: int) -> bytes:
    """A whole pcm16 mono recording at another rate."""
    if in_rate_hz == out_rate_hz:
        return pcm
    resampler = PcmResampler(in_rate_hz, out_rate_hz)
    return resampler.convert(pcm) + resampler.flush()


def _pcm(samples: npt.NDArray[np.float32]) -> bytes:
    return np.clip(np.rint(samples), -32768, 32767).astype("<i2").tobytes()


__all__ = ["PcmResampler", "Resampler", "resample_pcm"]
