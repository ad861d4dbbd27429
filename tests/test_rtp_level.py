"""benchmarks.rtp_level, the floor's numpy audio level: equals aiortc's, and its seam still exists.

- same integer as `aiortc.rtp.compute_audio_level_dbov` on silence, quiet, loud, clipped, mono,
  stereo and decoded Opus frames (whose plane is six times larger than their samples);
- aiortc's sender still calls `rtp.compute_audio_level_dbov(...)` through the module, so
  replacing the module attribute reaches it (breaks if upstream renames or inlines it);
- install/uninstall swap it process-wide.
"""

from __future__ import annotations

import fractions
import inspect
from collections.abc import Iterator

import aiortc.rtcrtpsender
import aiortc.rtp
import av
import numpy as np
import pytest
from aiortc.codecs.opus import OpusDecoder
from aiortc.jitterbuffer import JitterFrame

from benchmarks import rtp_level
from relay.audio import pcm_frame

pytestmark = pytest.mark.unit

STOCK = rtp_level._stock
RATE = 48_000


@pytest.fixture(autouse=True)
def stock_after() -> Iterator[None]:
    was = rtp_level.installed()
    yield
    (rtp_level.install if was else rtp_level.uninstall)()


def tone(samples: int, amplitude: float, hz: float = 440.0, rate: int = 24_000) -> np.ndarray:
    t = np.arange(samples) / rate
    return np.clip(np.sin(2 * np.pi * hz * t) * amplitude * 32768, -32768, 32767).astype("<i2")


def stereo_frame(pcm: np.ndarray) -> av.AudioFrame:
    frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="stereo")
    frame.sample_rate = RATE
    return frame


def decoded_opus_frames() -> list[av.AudioFrame]:
    encoder = av.CodecContext.create("libopus", "w")
    encoder.format, encoder.layout, encoder.sample_rate = "s16", "mono", RATE
    encoder.time_base = fractions.Fraction(1, RATE)
    signal = np.concatenate([tone(960 * 6, 0.4, 700, RATE), tone(960 * 4, 0.01, 300, RATE)])
    packets = []
    for i in range(len(signal) // 960):
        frame = av.AudioFrame.from_ndarray(
            signal[i * 960 : (i + 1) * 960].reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate, frame.pts = RATE, i * 960
        packets += encoder.encode(frame)
    decoder = OpusDecoder()
    frames: list[av.AudioFrame] = []
    for i, packet in enumerate(packets):
        frames += decoder.decode(JitterFrame(bytes(packet), i * 960))  # type: ignore[arg-type]
    return frames


@pytest.mark.parametrize(
    "pcm",
    [
        np.zeros(480, "<i2"),
        tone(480, 0.0005),
        tone(480, 0.05),
        tone(480, 0.7),
        tone(480, 1.5),  # clipped
        np.full(480, -32768, "<i2"),
        np.array([1] + [0] * 479, "<i2"),
    ],
    ids=["silence", "very_quiet", "quiet", "loud", "clipped", "full_scale", "one_lsb"],
)
def test_rtp_level_matches_aiortc_on_our_frames(pcm: np.ndarray) -> None:
    frame = pcm_frame(pcm.tobytes(), 0)
    assert rtp_level.compute_audio_level_dbov(frame) == STOCK(frame)


def test_rtp_level_matches_aiortc_on_stereo_frames() -> None:
    for amplitude in (0.001, 0.1, 0.9):
        frame = stereo_frame(tone(1920, amplitude, 500, RATE))
        assert rtp_level.compute_audio_level_dbov(frame) == STOCK(frame)


def test_rtp_level_matches_aiortc_on_decoded_opus_with_oversized_plane() -> None:
    frames = decoded_opus_frames()
    assert len(frames) >= 8
    oversized = [f for f in frames if f.planes[0].buffer_size > f.samples * 2 * 2]
    assert oversized, "PyAV's Opus decoder no longer pads its planes; the fix matters less"
    levels = [rtp_level.compute_audio_level_dbov(f) for f in frames]
    assert levels == [STOCK(f) for f in frames]
    assert max(levels) > -20 and min(levels) < -30  # loud and quiet frames were both checked


def test_rtp_level_reads_only_the_valid_samples() -> None:
    frame = decoded_opus_frames()[3]
    expected = rtp_level.compute_audio_level_dbov(frame)
    plane = frame.planes[0]
    valid = frame.samples * 2 * 2
    plane.update(bytes(plane)[:valid] + b"\xff\x7f" * ((plane.buffer_size - valid) // 2))
    assert rtp_level.compute_audio_level_dbov(frame) == expected
    assert STOCK(frame) == 0  # aiortc reads the stale rest of the plane as well


def test_aiortc_sender_still_calls_the_module_level_function() -> None:
    assert callable(getattr(aiortc.rtp, "compute_audio_level_dbov", None)), (
        "aiortc renamed compute_audio_level_dbov: update benchmarks/rtp_level.py"
    )
    source = inspect.getsource(aiortc.rtcrtpsender.RTCRtpSender)
    assert "rtp.compute_audio_level_dbov(" in source, (
        "aiortc's sender no longer calls rtp.compute_audio_level_dbov: see benchmarks/rtp_level.py"
    )


def test_rtp_level_install_and_uninstall_swap_it_process_wide() -> None:
    rtp_level.install()
    rtp_level.install()
    assert aiortc.rtp.compute_audio_level_dbov is rtp_level.compute_audio_level_dbov
    assert rtp_level.installed()
    rtp_level.uninstall()
    assert aiortc.rtp.compute_audio_level_dbov is STOCK
    assert not rtp_level.installed()
