"""The uplink's receive path in the event loop: reordered, decoded by libopus straight to 24 kHz.

aiortc holds received audio in a jitter buffer made for a loudspeaker (80 ms, and a stall on
loss), hands every frame to a decoder thread through a `queue.Queue` and each decoded 48 kHz
stereo frame back through `run_coroutine_threadsafe`: two thread hand-offs per 20 ms that buy no
parallelism (PyAV holds the GIL), and a resampler after them. `decode_in_loop(receiver)`
replaces the receiver's jitter buffer and decoder queue before it starts: a `ReorderBuffer`
passes packets on in order at once (relay/reorder.py), and a `LoopDecoder` decodes them in the
event loop with libopus straight to the model's pcm16 24 kHz mono, concealing lost ones.
aiortc's decoder thread still starts; it waits, idle, for the end of the track and then ends
it as it always does.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from aiortc import RTCRtpReceiver
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket
from av.frame import Frame

from protocol.audio import FRAME_SAMPLES

from . import libopus
from .audio import pcm_frame
from .reorder import ReorderBuffer

logger = logging.getLogger(__name__)

# The private attributes this module reaches (tests/test_decoding.py checks they still exist).
QUEUE_ATTRIBUTE = "_RTCRtpReceiver__decoder_queue"  # RTCRtpReceiver: frames to decode
JITTER_BUFFER_ATTRIBUTE = "_RTCRtpReceiver__jitter_buffer"  # its packets → frames
CODECS_ATTRIBUTE = "_RTCRtpReceiver__codecs"  # its payload type → codec map
TRACK_QUEUE_ATTRIBUTE = "_queue"  # its RemoteStreamTrack: decoded frames, read by recv()
MAX_QUEUED_FRAMES = 50  # one second; the uplink reads each frame as it comes


class ModelRateOpusDecoder:
    """Opus to pcm16 24 kHz mono frames, the model's format, numbered by samples decoded."""

    def __init__(self) -> None:
        self._decoder = libopus.Decoder()
        self._pts = 0
        self._last_samples = FRAME_SAMPLES

    def decode(self, data: bytes) -> list[Frame]:
        return self._frame(self._decoder.decode(data))

    def conceal(self) -> list[Frame]:
        """A lost packet: as long as the last one, concealed by libopus."""
        return self._frame(self._decoder.conceal(self._last_samples))

    def _frame(self, pcm: bytes) -> list[Frame]:
        frame = pcm_frame(pcm, self._pts)
        self._last_samples = frame.samples
        self._pts += frame.samples
        return [frame]


class LoopDecoder:
    """Stands in for a receiver's decoder queue: decodes at once, in the event loop.

    Audio is negotiated as Opus only (`relay.peer.add_opus_audio`); anything else is refused.
    """

    def __init__(self, output: asyncio.Queue[Frame | None]) -> None:
        self._output = output
        self._decoder = ModelRateOpusDecoder()
        self._ended = threading.Event()
        self.decode_errors = 0
        self.dropped_frames = 0

    def decode(self, codec: RTCRtpCodecParameters, data: bytes) -> None:
        try:
            if codec.name.lower() != "opus":
                raise libopus.OpusError(f"{codec.name} is not Opus")
            frames = self._decoder.decode(data)
        except libopus.OpusError as exc:  # keep the decoder: the next packet decodes again
            self.decode_errors += 1
            logger.debug("could not decode a %s frame: %s", codec.name, exc)
            return
        self._emit(frames)

    def conceal(self) -> None:
        """A packet was lost: libopus carries the voice on for its length."""
        self._emit(self._decoder.conceal())

    def _emit(self, frames: list[Frame]) -> None:
        for frame in frames:
            if self._output.qsize() >= MAX_QUEUED_FRAMES:
                self.dropped_frames += 1
                continue
            self._output.put_nowait(frame)

    def put(self, task: tuple[RTCRtpCodecParameters, JitterFrame] | None) -> None:
        """aiortc's side: None when the receiver stops (which releases its thread)."""
        if task is None:
            self._ended.set()
            return
        codec, encoded_frame = task
        self.decode(codec, encoded_frame.data)

    def get(self, *args: Any, **kwargs: Any) -> None:
        """What aiortc's decoder thread waits on: nothing until the receiver stops."""
        self._ended.wait()
        return None


class LoopJitterBuffer:
    """Stands in for a receiver's jitter buffer: reorders, then decodes in the loop itself."""

    def __init__(self, decoder: LoopDecoder, codecs: dict[int, RTCRtpCodecParameters]) -> None:
        self._decoder = decoder
        self._codecs = codecs  # the receiver's own map, filled when it starts
        self._reorder: ReorderBuffer[RtpPacket] = ReorderBuffer()

    @property
    def lost(self) -> int:
        return self._reorder.lost

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        for ready in self._reorder.add(packet.sequence_number, packet):
            if ready is None:
                self._decoder.conceal()
                continue
            codec = self._codecs.get(ready.payload_type)
            if codec is not None:
                data: bytes = getattr(ready, "_data", ready.payload)  # depayloaded by aiortc
                self._decoder.decode(codec, data)
        return False, None  # nothing for aiortc's own decoder path


def decode_in_loop(receiver: RTCRtpReceiver) -> LoopDecoder:
    """Make `receiver` reorder and decode in the event loop; call before it starts."""
    queue = getattr(receiver, QUEUE_ATTRIBUTE)
    if queue.qsize():
        raise RuntimeError("decode_in_loop: the receiver has already received frames")
    decoder = LoopDecoder(getattr(receiver.track, TRACK_QUEUE_ATTRIBUTE))
    codecs = getattr(receiver, CODECS_ATTRIBUTE)
    setattr(receiver, QUEUE_ATTRIBUTE, decoder)
    setattr(receiver, JITTER_BUFFER_ATTRIBUTE, LoopJitterBuffer(decoder, codecs))
    return decoder
