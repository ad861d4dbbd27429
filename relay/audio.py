"""Audio formats of the two legs and the conversions between them."""

from __future__ import annotations

import fractions

from av import AudioFrame, AudioResampler

MODEL_RATE_HZ = 24_000
FRAME_MS = 20
SAMPLE_BYTES = 2
BYTES_PER_MS = MODEL_RATE_HZ * SAMPLE_BYTES // 1000  # 48 bytes per ms of pcm16 24 kHz mono
FRAME_SAMPLES = MODEL_RATE_HZ * FRAME_MS // 1000  # 480
FRAME_BYTES = FRAME_SAMPLES * SAMPLE_BYTES  # 960
FRAME_S = FRAME_MS / 1000
MODEL_TIME_BASE = fractions.Fraction(1, MODEL_RATE_HZ)


def pcm_ms(pcm: bytes | bytearray | memoryview) -> float:
    """Duration of pcm16 24 kHz mono audio in milliseconds."""
    return len(pcm) / BYTES_PER_MS


class ModelResampler:
    """Converts any decoded frame to pcm16 24 kHz mono bytes (the model's input format)."""

    def __init__(self) -> None:
        self._resampler = AudioResampler(format="s16", layout="mono", rate=MODEL_RATE_HZ)

    def convert(self, frame: AudioFrame) -> bytes:
        if (
            frame.sample_rate == MODEL_RATE_HZ
            and frame.format.name == "s16"
            and frame.layout.name == "mono"
        ):
            return _frame_bytes(frame)
        return b"".join(_frame_bytes(out) for out in self._resampler.resample(frame))


def _frame_bytes(frame: AudioFrame) -> bytes:
    # Decoded Opus frames carry a plane larger than their samples; keep only the valid part.
    size = frame.samples * SAMPLE_BYTES * len(frame.layout.channels)
    return bytes(memoryview(frame.planes[0])[:size])


def pcm_frame(pcm: bytes, pts: int) -> AudioFrame:
    """One pcm16 24 kHz mono frame holding `pcm` exactly."""
    frame = AudioFrame(format="s16", layout="mono", samples=len(pcm) // SAMPLE_BYTES)
    frame.planes[0].update(pcm)
    frame.sample_rate = MODEL_RATE_HZ
    frame.time_base = MODEL_TIME_BASE
    frame.pts = pts
    return frame
