"""LoopDecoder: an aiortc receiver's audio decoded in the event loop, Opus straight to 24 kHz.

aiortc hands every received frame to a decoder thread through a `queue.Queue` and each decoded
frame back through `run_coroutine_threadsafe`: two thread hand-offs per 20 ms that buy no
parallelism (PyAV holds the GIL while decoding) and cost about a tenth of the relay's CPU.
`decode_in_loop(receiver)` puts a `LoopDecoder` in place of that queue before the receiver
starts: frames are decoded as the receiver puts them, and Opus is decoded by libopus straight
to the model's pcm16 24 kHz mono (no resampling left for the uplink). aiortc's thread still
starts; it waits, idle, for the end of the track and then ends it as it always does.
"""

from __future__ import annotations

import asyncio
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

from . import libopus
from .audio import MODEL_RATE_HZ, pcm_frame

logger = logging.getLogger(__name__)

OPUS_RTP_RATE_HZ = 48_000
# The private attributes this module reaches (tests/test_decoding.py checks they still exist).
QUEUE_ATTRIBUTE = "_RTCRtpReceiver__decoder_queue"  # RTCRtpReceiver: frames to decode
TRACK_QUEUE_ATTRIBUTE = "_queue"  # its RemoteStreamTrack: decoded frames, read by recv()
MAX_QUEUED_FRAMES = 50  # one second; the uplink reads each frame as it comes


class ModelRateOpusDecoder(Decoder):
    """Opus to pcm16 24 kHz mono frames, the model's format."""

    def __init__(self) -> None:
        self._decoder = libopus.Decoder()

    def decode(self, encoded_frame: JitterFrame) -> list[Frame]:
        pcm = self._decoder.decode(encoded_frame.data)
        # RTP timestamps of Opus count 48 kHz samples whatever the coded rate.
        return [pcm_frame(pcm, encoded_frame.timestamp * MODEL_RATE_HZ // OPUS_RTP_RATE_HZ)]


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
            self._decoder = ModelRateOpusDecoder() if codec.name == "opus" else get_decoder(codec)
            self._codec_name = codec.name
        try:
            frames = self._decoder.decode(encoded_frame)
        except (av.FFmpegError, libopus.OpusError) as exc:  # keep the decoder: the next decodes
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
