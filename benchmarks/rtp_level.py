"""RFC 6465 audio level for aiortc's RTP sender, computed with numpy over the valid samples only.

For every outgoing audio frame aiortc's `RTCRtpSender` calls `aiortc.rtp.compute_audio_level_dbov`,
a pure-Python loop over every sample of `frame.planes[0]`. Frames decoded by PyAV's Opus decoder
carry 120 ms planes for 20 ms of audio, so that loop runs over ~11,500 samples per frame; even on
our own one-frame planes it costs ~0.1 ms per frame. `install()` swaps in this version
process-wide; the result is the same integer (same formula, exact integer sum) on the valid part.

The relay sends ready Opus packets (relay/opus.py), for which aiortc computes no level; the floor
echo and the `aiortc-encoder` relay variant forward frames, and use this so that aiortc's Python
loop does not inflate them.
"""

from __future__ import annotations

import math

import aiortc.rtp
import numpy as np
from av import AudioFrame

MAX_SAMPLE_VALUE = 32767
MIN_AUDIO_LEVEL = -127
MAX_AUDIO_LEVEL = 0

_stock = getattr(aiortc.rtp, "compute_audio_level_dbov", None)


def compute_audio_level_dbov(frame: AudioFrame) -> int:
    """The level of `frame` in -dBov, as aiortc computes it (RFC 6465, Appendix A)."""
    if frame.samples == 0:
        return MIN_AUDIO_LEVEL
    if frame.format.name != "s16":
        assert _stock is not None
        return int(_stock(frame))
    count = frame.samples * frame.layout.nb_channels
    pcm = np.frombuffer(memoryview(frame.planes[0]), dtype=np.int16, count=count).astype(np.float64)
    # Exact: each square is below 2**30 and a frame sums fewer than 2**22 of them (< 2**53).
    energy = float(np.dot(pcm, pcm))
    # Same normalisation as aiortc (by samples per channel), so the header value is unchanged.
    rms = math.sqrt(energy / (frame.samples * MAX_SAMPLE_VALUE * MAX_SAMPLE_VALUE))
    if rms <= 0:
        return MIN_AUDIO_LEVEL
    return round(min(max(20 * math.log10(rms), MIN_AUDIO_LEVEL), MAX_AUDIO_LEVEL))


def install() -> None:
    """Make every aiortc sender in this process use the numpy level (idempotent)."""
    if _stock is None:
        raise RuntimeError(
            "aiortc.rtp.compute_audio_level_dbov is gone: update benchmarks/rtp_level.py"
        )
    aiortc.rtp.compute_audio_level_dbov = compute_audio_level_dbov


def uninstall() -> None:
    """Restore aiortc's own function (for comparisons and tests)."""
    if _stock is not None:
        aiortc.rtp.compute_audio_level_dbov = _stock


def installed() -> bool:
    return getattr(aiortc.rtp, "compute_audio_level_dbov", None) is compute_audio_level_dbov
