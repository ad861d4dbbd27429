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
WEBRTC_RATE_HZ = 48_000
WEBRTC_TIME_BASE = fractions.Fraction(1, WEBRTC_RATE_HZ)


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
    return bytes(frame.planes[0])[:size]


def pcm_frame(pcm: bytes, pts: int) -> AudioFrame:
    """One pcm16 24 kHz mono frame holding `pcm` exactly."""
    frame = AudioFrame(format="s16", layout="mono", samples=len(pcm) // SAMPLE_BYTES)
    frame.planes[0].update(pcm)
    frame.sample_rate = MODEL_RATE_HZ
    frame.time_base = MODEL_TIME_BASE
    frame.pts = pts
    return frame


class WebRtcResampler:
    """Turns 20 ms of pcm16 24 kHz mono into one 48 kHz mono frame of exactly 20 ms.

    aiortc's Opus encoder re-frames its input into 960-sample 48 kHz frames; a 24 kHz frame
    resampled there comes out a few samples short, so each frame waited for the next one: 20 ms
    of delay. Exact 48 kHz frames pass straight through. Our resampler is primed with one
    frame of silence, so its filter delay (32 samples) is paid once and every later call
    returns exactly one full frame, which is handed on without a copy.
    """

    def __init__(self) -> None:
        self._resampler = AudioResampler(format="s16", layout="mono", rate=WEBRTC_RATE_HZ)
        self._resampler.resample(pcm_frame(bytes(FRAME_BYTES), 0))
        self._carry = b""

    def frame(self, pcm: bytes, pts: int) -> AudioFrame:
        ratio = WEBRTC_RATE_HZ // MODEL_RATE_HZ
        resampled = self._resampler.resample(pcm_frame(pcm, pts))
        size = len(pcm) * ratio  # bytes of 48 kHz audio
        if not self._carry and len(resampled) == 1 and resampled[0].samples * 2 == size:
            frame = resampled[0]
        else:  # not seen with PyAV 18; keep the frame length exact whatever the resampler does
            out = self._carry + b"".join(_frame_bytes(f) for f in resampled)
            out = bytes(max(0, size - len(out))) + out
            self._carry = out[size:]
            frame = AudioFrame(format="s16", layout="mono", samples=size // SAMPLE_BYTES)
            frame.planes[0].update(out[:size])
            frame.sample_rate = WEBRTC_RATE_HZ
        frame.time_base = WEBRTC_TIME_BASE
        frame.pts = pts * ratio
        return frame
