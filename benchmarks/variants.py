"""`voice-relay` with named optimizations undone, to measure what each one saves in the same run.

    python -m benchmarks.variants aiortc-encoder+no-catch-up serve --port 8000

`relay_bench --relay-variant NAME` starts one of these next to the real relay as target
`relay-NAME`. Variants patch only this process; nothing here is used by the product.
"""

from __future__ import annotations

import asyncio
import fractions
import sys
from collections.abc import Callable
from typing import Any

from aiortc.jitterbuffer import JitterBuffer
from av import AudioFrame, AudioResampler

from protocol.audio import FRAME_BYTES, PCM_RATE_HZ, SAMPLE_BYTES
from relay import decoding, session
from relay.audio import pcm_frame
from relay.playout import PlayoutTrack
from web import cli

from . import rtp_level
from .scenarios import RELAY_VARIANTS

WEBRTC_RATE_HZ = 48_000
WEBRTC_TIME_BASE = fractions.Fraction(1, WEBRTC_RATE_HZ)


class WebRtcResampler:
    """20 ms of pcm16 24 kHz mono as one 48 kHz frame of exactly 20 ms (aiortc's encoder re-frames
    anything else into 960-sample frames, and a short frame waits 20 ms for the next)."""

    def __init__(self) -> None:
        self._resampler = AudioResampler(format="s16", layout="mono", rate=WEBRTC_RATE_HZ)
        self._resampler.resample(pcm_frame(bytes(FRAME_BYTES), 0))  # pay the filter delay once

    def frame(self, pcm: bytes, pts: int) -> AudioFrame:
        ratio = WEBRTC_RATE_HZ // PCM_RATE_HZ
        (frame,) = self._resampler.resample(pcm_frame(pcm, pts))
        assert frame.samples * SAMPLE_BYTES == len(pcm) * ratio
        frame.time_base = WEBRTC_TIME_BASE
        frame.pts = pts * ratio
        return frame


def aiortc_encoder() -> None:
    """Playout as 48 kHz frames encoded by aiortc (stereo 96 kbps in its executor, RTP audio
    level in numpy): the relay before relay/opus.py."""
    rtp_level.install()

    async def recv(self: PlayoutTrack) -> Any:
        pcm = await self.next_pcm()
        resampler = self.__dict__.get("_to_webrtc")
        if resampler is None:  # one per track, primed once, as the relay had it
            resampler = self.__dict__["_to_webrtc"] = WebRtcResampler()
        return resampler.frame(pcm, self._pts)

    PlayoutTrack.recv = recv  # type: ignore[method-assign]


def aiortc_decoder() -> None:
    """Received audio decoded to stereo in aiortc's decoder thread: before relay/decoding.py."""
    session.decode_in_loop = lambda receiver: None  # type: ignore[attr-defined]


def aiortc_jitter_buffer() -> None:
    """aiortc's 80 ms audio jitter buffer in front of the loop decoder: before relay/reorder.py."""
    decode_in_loop = decoding.decode_in_loop

    def with_aiortc_jitter_buffer(receiver: Any) -> Any:
        decoder = decode_in_loop(receiver)
        setattr(receiver, decoding.JITTER_BUFFER_ATTRIBUTE, JitterBuffer(capacity=16, prefetch=4))
        return decoder

    session.decode_in_loop = with_aiortc_jitter_buffer  # type: ignore[attr-defined]


def paced_after_underrun() -> None:
    """Audio that arrives after an underrun waits for the next 20 ms tick (before the wake)."""

    async def sleep(self: PlayoutTrack, loop: asyncio.AbstractEventLoop, delay: float) -> bool:
        await asyncio.sleep(delay)
        return False

    PlayoutTrack._sleep = sleep  # type: ignore[method-assign]


def no_catch_up() -> None:
    """A real-time stream keeps whatever a burst added to the playout buffer (before catch-up)."""
    PlayoutTrack._has_spare_audio = lambda self: False  # type: ignore[method-assign]


VARIANTS: dict[str, Callable[[], None]] = {
    "aiortc-encoder": aiortc_encoder,
    "aiortc-decoder": aiortc_decoder,
    "aiortc-jitter-buffer": aiortc_jitter_buffer,
    "paced-after-underrun": paced_after_underrun,
    "no-catch-up": no_catch_up,
}
assert tuple(VARIANTS) == RELAY_VARIANTS


def main() -> int:
    names, argv = sys.argv[1], sys.argv[2:]
    for name in names.split("+"):
        VARIANTS[name]()
    return cli.main(argv)


if __name__ == "__main__":
    sys.exit(main())
