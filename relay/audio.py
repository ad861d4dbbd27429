"""PyAV frames of the protocol's pcm16 24 kHz mono, for aiortc's track interface."""

from __future__ import annotations

import fractions

from av import AudioFrame, AudioResampler

from protocol.audio import PCM_RATE_HZ, SAMPLE_BYTES

PCM_TIME_BASE = fractions.Fraction(1, PCM_RATE_HZ)


class ModelResampler:
    """Converts any decoded frame to pcm16 24 kHz mono bytes (the model's input format)."""

    def __init__(self) -> None:
        self._resampler = AudioResampler(format="s16", layout="mono", rate=PCM_RATE_HZ)

    def convert(self, frame: AudioFrame) -> bytes:
        if (
            frame.sample_rate == PCM_RATE_HZ
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
    frame.sample_rate = PCM_RATE_HZ
    frame.time_base = PCM_TIME_BASE
    frame.pts = pts
    return frame
