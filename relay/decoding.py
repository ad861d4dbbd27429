"""The uplink's receive path: a receiver's audio in order, decoded in the event loop to 24 kHz.

aiortc holds received audio in a jitter buffer made for a loudspeaker (80 ms, and a stall on
loss), hands every frame to a decoder thread through a `queue.Queue` and each decoded 48 kHz
stereo frame back through `run_coroutine_threadsafe`: two thread hand-offs per 20 ms that buy no
parallelism (PyAV holds the GIL), and a resampler after them. `receive_audio` replaces the
receiver's jitter buffer before it starts: a `ReorderBuffer` passes packets on in order at once
(relay/reorder.py), and a `LoopDecoder` decodes them in the event loop with libopus straight to
pcm16 24 kHz mono, concealing lost ones, and hands the audio to a sink. No frame reaches aiortc's
decoder thread: it waits, idle, for the receiver to stop, then ends the track as it always does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from aiortc import RTCRtpReceiver
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket
from av import AudioFrame

from protocol.audio import FRAME_SAMPLES, SAMPLE_BYTES

from . import libopus, upstream
from .audio import FrameResampler
from .media import MediaOptions
from .reorder import ReorderBuffer

logger = logging.getLogger(__name__)

Sink = Callable[[bytes], None]  # takes pcm16 24 kHz mono


class AudioReceiver(Protocol):
    """One peer's received audio on its way to a sink."""

    def counters(self) -> dict[str, int]:
        """What went wrong on the way so far (lost packets, decode errors), by name."""
        ...

    async def stop(self) -> None:
        """The sink is not called again."""
        ...


class LoopDecoder:
    """Opus packets decoded at once, in the event loop, to pcm16 24 kHz mono for `sink`.

    Audio is negotiated as Opus only (`relay.peer.add_opus_audio`); anything else is refused.
    """

    def __init__(self, sink: Sink) -> None:
        self._sink = sink
        self._decoder = libopus.Decoder()
        self._last_samples = FRAME_SAMPLES
        self.decode_errors = 0

    def decode(self, codec: RTCRtpCodecParameters, data: bytes) -> None:
        try:
            if codec.name.lower() != "opus":
                raise libopus.OpusError(f"{codec.name} is not Opus")
            pcm = self._decoder.decode(data)
        except libopus.OpusError as exc:  # keep the decoder: the next packet decodes again
            self.decode_errors += 1
            logger.debug("could not decode a %s packet: %s", codec.name, exc)
            return
        self._last_samples = len(pcm) // SAMPLE_BYTES
        self._sink(pcm)

    def conceal(self) -> None:
        """A packet was lost: libopus carries the voice on for as long as the last one."""
        self._sink(self._decoder.conceal(self._last_samples))


class LoopJitterBuffer:
    """Stands in for a receiver's jitter buffer: orders its packets and decodes them itself.

    `reorder=False` puts aiortc's own audio jitter buffer in front of the decoder instead of a
    `ReorderBuffer` (the relay before relay/reorder.py).
    """

    def __init__(
        self, decoder: LoopDecoder, codecs: dict[int, RTCRtpCodecParameters], reorder: bool = True
    ) -> None:
        self._decoder = decoder
        self._codecs = codecs  # the receiver's own map, filled when it starts
        self._reorder: ReorderBuffer[RtpPacket] = ReorderBuffer()
        self._aiortc = None if reorder else JitterBuffer(capacity=16, prefetch=4)
        self.stopped = False

    @property
    def lost(self) -> int:
        return self._reorder.lost

    @property
    def late(self) -> int:
        return self._reorder.late

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        if self.stopped:
            return False, None
        if self._aiortc is not None:
            _, frame = self._aiortc.add(packet)
            codec = self._codecs.get(packet.payload_type)  # as aiortc does: the last packet's
            if frame is not None and codec is not None:
                self._decoder.decode(codec, frame.data)
            return False, None
        for ready in self._reorder.add(packet.sequence_number, packet):
            if ready is None:
                self._decoder.conceal()
                continue
            codec = self._codecs.get(ready.payload_type)
            if codec is not None:
                self._decoder.decode(codec, upstream.depayloaded(ready))
        return False, None  # nothing for aiortc's decoder thread


class LoopReceiver:
    """A receiver whose audio is ordered and decoded in the event loop (`LoopJitterBuffer`)."""

    def __init__(self, receiver: RTCRtpReceiver, sink: Sink, reorder: bool) -> None:
        self._decoder = LoopDecoder(sink)
        codecs = upstream.receiver_codecs(receiver)
        self._jitter_buffer = LoopJitterBuffer(self._decoder, codecs, reorder)
        upstream.replace_jitter_buffer(receiver, self._jitter_buffer)

    def counters(self) -> dict[str, int]:
        return {
            "lost_packets": self._jitter_buffer.lost,  # each concealed by libopus
            "late_packets": self._jitter_buffer.late,
            "decode_errors": self._decoder.decode_errors,
        }

    async def stop(self) -> None:
        self._jitter_buffer.stopped = True


class TrackReader:
    """aiortc's own receive path: its jitter buffer and decoder thread, then a task that reads
    the track and resamples each 48 kHz stereo frame (the relay before this module)."""

    def __init__(self, track: MediaStreamTrack, sink: Sink) -> None:
        self._resampler = FrameResampler()
        self._task = asyncio.create_task(self._run(track, sink), name="uplink-track-reader")

    async def _run(self, track: MediaStreamTrack, sink: Sink) -> None:
        try:
            while True:
                frame = await track.recv()
                assert isinstance(frame, AudioFrame)
                pcm = self._resampler.convert(frame)
                if pcm:
                    sink(pcm)
        except MediaStreamError:
            return

    def counters(self) -> dict[str, int]:
        return {}  # aiortc counts nothing it would tell

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


def receive_audio(receiver: RTCRtpReceiver, sink: Sink, options: MediaOptions) -> AudioReceiver:
    """Send `receiver`'s audio to `sink` as pcm16 24 kHz mono, the way `options` say.

    Call after setRemoteDescription (which gives the receiver its track) and before the
    connection starts receiving.
    """
    if not options.loop_decoder:
        if receiver.track is None:
            raise ValueError("receive_audio: the receiver has no track")
        return TrackReader(receiver.track, sink)
    return LoopReceiver(receiver, sink, options.reorder_buffer)
