"""LoopDecoder: an aiortc receiver's audio decoded in the event loop, Opus straight to mono.

aiortc hands every received frame to a decoder thread through a `queue.Queue` and each decoded
frame back through `run_coroutine_threadsafe`: two thread hand-offs per 20 ms that buy no
parallelism (PyAV holds the GIL while decoding) and cost about a tenth of the relay's CPU.
`decode_in_loop(receiver)` puts a `LoopDecoder` in place of that queue before the receiver
starts: frames are decoded as the receiver puts them, and Opus is decoded to mono (the model
hears mono; libopus down-mixes for free). aiortc's thread still starts; it waits, idle, for
the end of the track and then ends it as it always does.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import threading
from typing import Any

import av
from aiortc import RTCRtpReceiver
from aiortc.codecs import get_decoder
from aiortc.codecs.base import Decoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from av.frame import Frame

logger = logging.getLogger(__name__)

OPUS_RATE_HZ = 48_000  # RTP clock and decoder output rate of Opus in WebRTC
OPUS_TIME_BASE = fractions.Fraction(1, OPUS_RATE_HZ)
# The private attributes this module reaches (tests/test_decoding.py checks they still exist).
QUEUE_ATTRIBUTE = "_RTCRtpReceiver__decoder_queue"  # RTCRtpReceiver: frames to decode
TRACK_QUEUE_ATTRIBUTE = "_queue"  # its RemoteStreamTrack: decoded frames, read by recv()
MAX_QUEUED_FRAMES = 50  # one second; the uplink reads each frame as it comes


class MonoOpusDecoder(Decoder):
    """Opus to pcm16 48 kHz mono."""

    def __init__(self) -> None:
        self._codec = av.CodecContext.create("libopus", "r")
        self._codec.format = "s16"
        self._codec.layout = "mono"
        self._codec.sample_rate = OPUS_RATE_HZ

    def decode(self, encoded_frame: JitterFrame) -> list[Frame]:
        packet = av.Packet(encoded_frame.data)
        packet.pts = encoded_frame.timestamp
        packet.time_base = OPUS_TIME_BASE
        return list(self._codec.decode(packet))


class LoopDecoder:
    """Stands in for a receiver's decoder queue: `put` decodes at once, in the event loop."""

    def __init__(self, output: asyncio.Queue[Frame | None]) -> None:
        self._output = output
        self._codec_name: str | None = None
        self._decoder: Decoder | None = None
        self._ended = threading.Event()
        self.decode_errors = 0
        self.dropped_frames = 0

    def put(self, task: tuple[RTCRtpCodecParameters, JitterFrame] | None) -> None:
        if task is None:  # the receiver stops: release aiortc's thread, which ends the track
            self._ended.set()
            return
        codec, encoded_frame = task
        if codec.name != self._codec_name or self._decoder is None:
            self._decoder = MonoOpusDecoder() if codec.name == "opus" else get_decoder(codec)
            self._codec_name = codec.name
        try:
            frames = self._decoder.decode(encoded_frame)
        except av.FFmpegError as exc:  # keep the decoder: the next packet decodes again
            self.decode_errors += 1
            logger.debug("could not decode a %s frame: %s", codec.name, exc)
            return
        for frame in frames:
            if self._output.qsize() >= MAX_QUEUED_FRAMES:
                self.dropped_frames += 1
                continue
            self._output.put_nowait(frame)

    def get(self, *args: Any, **kwargs: Any) -> None:
        """What aiortc's decoder thread waits on: nothing until the receiver stops."""
        self._ended.wait()
        return None


def decode_in_loop(receiver: RTCRtpReceiver) -> LoopDecoder:
    """Make `receiver` decode in the event loop; call before it starts (before `connect`)."""
    queue = getattr(receiver, QUEUE_ATTRIBUTE)
    if queue.qsize():
        raise RuntimeError("decode_in_loop: the receiver has already received frames")
    decoder = LoopDecoder(getattr(receiver.track, TRACK_QUEUE_ATTRIBUTE))
    setattr(receiver, QUEUE_ATTRIBUTE, decoder)
    return decoder
