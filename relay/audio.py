"""PyAV frames of the protocol's pcm16 24 kHz mono, for aiortc's track interface, and back.

The relay's own media path has no frames: libopus decodes to and encodes from pcm16 24 kHz
bytes (relay/libopus.py). Frames serve the aiortc paths `MediaOptions` keeps for comparison,
and test peers.
"""

from __future__ import annotations

import fractions

from av import AudioFrame, AudioResampler

from protocol.audio import FRAME_BYTES, PCM_RATE_HZ, SAMPLE_BYTES

PCM_TIME_BASE = fractions.Fraction(1, PCM_RATE_HZ)
WEBRTC_RATE_HZ = 48_000  # what aiortc's Opus encoder and decoder work at
WEBRTC_TIME_BASE = fractions.Fraction(1, WEBRTC_RATE_HZ)


class FrameResampler:
    """Any decoded frame (aiortc's: 48 kHz stereo) to pcm16 24 kHz mono bytes."""

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


class WebRtcResampler:
    """20 ms of pcm16 24 kHz mono as one 48 kHz frame of exactly 20 ms, for aiortc's encoder
    (it re-frames anything else into 960-sample frames, and a short frame waits for the next)."""

    def __init__(self) -> None:
        self._resampler = AudioResampler(format="s16", layout="mono", rate=WEBRTC_RATE_HZ)
        self._resampler.resample(pcm_frame(bytes(FRAME_BYTES), 0))  # pay the filter delay once

    def frame(self, pcm: bytes, pts: int) -> AudioFrame:
        """`pts` in 24 kHz samples, as the playout counts."""
        ratio = WEBRTC_RATE_HZ // PCM_RATE_HZ
        (frame,) = self._resampler.resample(pcm_frame(pcm, pts))
        assert frame.samples * SAMPLE_BYTES == len(pcm) * ratio
        frame.time_base = WEBRTC_TIME_BASE
        frame.pts = pts * ratio
        return frame


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
