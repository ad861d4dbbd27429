"""relay.decoding: a receiver's audio reordered and decoded in the event loop, and its aiortc seam.

- Opus frames put by the receiver come out decoded, pcm16 24 kHz mono, in order, at once;
- a frame that does not decode is counted and skipped, the next one decodes;
- the track's queue stays bounded when nobody reads it;
- the receiver stopping releases aiortc's decoder thread, which ends the track;
- through aiortc's own packet handler: no prefetch, reordering, a lost packet concealed;
- aiortc still has the private attributes `decode_in_loop` replaces.
"""

from __future__ import annotations

import asyncio
import inspect
import queue
import threading

import aiortc.rtcrtpreceiver
import numpy as np
import pytest
from aiortc import RTCDtlsTransport, RTCRtpReceiver
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtcrtpreceiver import RemoteStreamTrack
from aiortc.rtp import RtpPacket
from av.frame import Frame

from protocol.audio import FRAME_BYTES
from relay.decoding import (
    CODECS_ATTRIBUTE,
    JITTER_BUFFER_ATTRIBUTE,
    MAX_QUEUED_FRAMES,
    QUEUE_ATTRIBUTE,
    TRACK_QUEUE_ATTRIBUTE,
    LoopDecoder,
    LoopJitterBuffer,
    decode_in_loop,
)
from relay.opus import PlayoutEncoder

from .speech import tone

pytestmark = pytest.mark.unit

OPUS = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2, payloadType=111)


def opus_frames(seconds: float) -> list[JitterFrame]:
    encoder = PlayoutEncoder()
    pcm = tone(round(seconds * 1000))
    return [
        JitterFrame(data=bytes(encoder.encode(pcm[i : i + FRAME_BYTES], i // 2)), timestamp=i)
        for i in range(0, len(pcm) - FRAME_BYTES + 1, FRAME_BYTES)
    ]


async def test_opus_frames_decode_in_order_to_mono_at_once() -> None:
    output: asyncio.Queue[Frame | None] = asyncio.Queue()
    decoder = LoopDecoder(output)
    for frame in opus_frames(0.2):
        decoder.put((OPUS, frame))
    decoded = [output.get_nowait() for _ in range(output.qsize())]
    assert len(decoded) == 10
    assert all(f is not None and f.layout.name == "mono" for f in decoded)
    assert all(f is not None and (f.sample_rate, f.samples) == (24_000, 480) for f in decoded)
    assert all(f is not None and f.format.name == "s16" for f in decoded)
    assert [f.pts for f in decoded if f is not None] == [480 * i for i in range(10)]
    last = decoded[-1]
    assert last is not None
    pcm = np.frombuffer(memoryview(last.planes[0])[: 480 * 2], np.int16)
    assert np.abs(pcm).max() > 3000  # the tone, not silence


async def test_a_frame_that_does_not_decode_is_counted_and_skipped() -> None:
    output: asyncio.Queue[Frame | None] = asyncio.Queue()
    decoder = LoopDecoder(output)
    good = opus_frames(0.04)
    decoder.put((OPUS, good[0]))
    decoder.put((OPUS, JitterFrame(data=b"\xff" * 3, timestamp=960)))
    decoder.put((OPUS, good[1]))
    assert decoder.decode_errors == 1
    assert output.qsize() == 2
    pcmu = RTCRtpCodecParameters(mimeType="audio/PCMU", clockRate=8000, channels=1, payloadType=0)
    decoder.put((pcmu, JitterFrame(data=bytes(160), timestamp=0)))  # never negotiated: refused
    assert decoder.decode_errors == 2
    assert output.qsize() == 2


async def test_the_track_queue_stays_bounded() -> None:
    output: asyncio.Queue[Frame | None] = asyncio.Queue()
    decoder = LoopDecoder(output)
    for frame in opus_frames(1.2):  # 60 frames, nobody reading
        decoder.put((OPUS, frame))
    assert output.qsize() == MAX_QUEUED_FRAMES
    assert decoder.dropped_frames == 60 - MAX_QUEUED_FRAMES


async def test_stop_releases_aiortcs_thread_which_ends_the_track() -> None:
    output: asyncio.Queue[Frame | None] = asyncio.Queue()
    decoder = LoopDecoder(output)
    loop = asyncio.get_running_loop()
    worker = threading.Thread(
        target=aiortc.rtcrtpreceiver.decoder_worker,
        args=(loop, decoder, output, threading.Event()),
    )
    worker.start()
    decoder.put((OPUS, opus_frames(0.02)[0]))
    assert worker.is_alive()  # idle: waiting for the end
    decoder.put(None)
    await asyncio.to_thread(worker.join, 2.0)
    assert not worker.is_alive()
    assert (await output.get()) is not None  # the decoded frame first
    assert (await asyncio.wait_for(output.get(), 1.0)) is None  # then the end of the track


def standalone_receiver() -> RTCRtpReceiver:
    """A receiver as setRemoteDescription leaves it, with Opus negotiated as payload type 111."""
    from aiortc import RTCCertificate, RTCIceGatherer, RTCIceTransport

    ice = RTCIceTransport(RTCIceGatherer())
    receiver = RTCRtpReceiver(
        "audio", RTCDtlsTransport(ice, [RTCCertificate.generateCertificate()])
    )
    receiver._track = RemoteStreamTrack(kind="audio")  # as setRemoteDescription does
    getattr(receiver, CODECS_ATTRIBUTE)[OPUS.payloadType] = OPUS  # as receive() does
    return receiver


async def test_decode_in_loop_replaces_the_receivers_jitter_buffer_and_queue() -> None:
    receiver = standalone_receiver()
    assert isinstance(getattr(receiver, QUEUE_ATTRIBUTE), queue.Queue)  # aiortc's own, before
    assert isinstance(getattr(receiver, JITTER_BUFFER_ATTRIBUTE), JitterBuffer)
    assert isinstance(getattr(receiver.track, TRACK_QUEUE_ATTRIBUTE), asyncio.Queue)
    decoder = decode_in_loop(receiver)
    assert getattr(receiver, QUEUE_ATTRIBUTE) is decoder
    assert isinstance(getattr(receiver, JITTER_BUFFER_ATTRIBUTE), LoopJitterBuffer)


async def test_received_packets_come_out_at_once_in_order_and_losses_concealed() -> None:
    receiver = standalone_receiver()
    decode_in_loop(receiver)
    frames = opus_frames(0.2)  # 10 packets of a tone

    async def arrive(index: int) -> None:
        packet = RtpPacket(
            payload_type=OPUS.payloadType,
            sequence_number=1000 + index,
            timestamp=960 * index,
            payload=frames[index].data,
        )
        await receiver._handle_rtp_packet(packet, arrival_time_ms=0)

    await arrive(0)
    assert receiver.track._queue.qsize() == 1  # type: ignore[union-attr]  # no prefetch
    for index in (2, 1):  # swapped on the way
        await arrive(index)
    for index in (4, 5, 6, 7, 8, 9):  # 3 is lost
        await arrive(index)
    decoded = [await receiver.track.recv() for _ in range(10)]  # 9 received + 1 concealed
    assert [f.pts for f in decoded] == [480 * i for i in range(10)]  # type: ignore[attr-defined]
    jitter = getattr(receiver, JITTER_BUFFER_ATTRIBUTE)
    assert jitter.lost == 1
    concealed = np.frombuffer(memoryview(decoded[3].planes[0])[:960], np.int16)  # type: ignore[attr-defined]
    assert np.abs(concealed).max() > 1000  # the voice carried on through the gap


def test_aiortcs_decoder_thread_still_waits_on_get_and_ends_the_track_on_none() -> None:
    source = inspect.getsource(aiortc.rtcrtpreceiver.decoder_worker)
    assert "input_q.get()" in source and "output_q.put(None)" in source, (
        "aiortc's decoder_worker changed: review relay/decoding.py"
    )
    receiver_source = inspect.getsource(aiortc.rtcrtpreceiver.RTCRtpReceiver)
    assert "self.__decoder_queue.put((codec, encoded_frame))" in receiver_source
    assert "self.__decoder_queue.put(None)" in receiver_source
    assert "self.__jitter_buffer.add(packet)" in receiver_source
    assert "self.__codecs[codec.payloadType] = codec" in receiver_source
