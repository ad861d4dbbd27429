"""relay.decoding: a receiver's audio reordered and decoded in the event loop, handed to a sink.

- Opus packets come out decoded, pcm16 24 kHz mono, in order, at once;
- a packet that does not decode is counted and skipped, the next one decodes;
- through aiortc's own packet handler: no prefetch, reordering, a lost packet concealed and
  counted, nothing left for aiortc's decoder thread, nothing for the sink once stopped;
- `reorder_buffer=False`: aiortc's jitter buffer holds 80 ms in front of the loop decoder;
- `loop_decoder=False`: aiortc's decoded 48 kHz stereo frames read from the track, resampled.
"""

from __future__ import annotations

import asyncio
import fractions

import numpy as np
import pytest
from aiortc import RTCCertificate, RTCDtlsTransport, RTCIceGatherer, RTCIceTransport, RTCRtpReceiver
from aiortc.codecs.opus import OpusDecoder
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtcrtpreceiver import RemoteStreamTrack
from aiortc.rtp import RtpPacket
from av import AudioFrame

from protocol.audio import FRAME_BYTES, PCM_RATE_HZ
from relay.decoding import LoopDecoder, LoopJitterBuffer, receive_audio
from relay.media import MediaOptions
from relay.opus import PlayoutEncoder
from relay.upstream import CODECS_ATTRIBUTE, JITTER_BUFFER_ATTRIBUTE

from .speech import tone

pytestmark = pytest.mark.unit

OPUS_PT = 111
OPUS = RTCRtpCodecParameters(
    mimeType="audio/opus", clockRate=48000, channels=2, payloadType=OPUS_PT
)
DECODER_QUEUE_ATTRIBUTE = "_RTCRtpReceiver__decoder_queue"  # aiortc's: frames for its thread


def opus_packets(seconds: float) -> list[bytes]:
    encoder = PlayoutEncoder()
    pcm = tone(round(seconds * 1000))
    return [
        bytes(encoder.encode(pcm[i : i + FRAME_BYTES], i // 2))
        for i in range(0, len(pcm) - FRAME_BYTES + 1, FRAME_BYTES)
    ]


def loud(pcm: bytes) -> bool:
    return bool(np.abs(np.frombuffer(pcm, np.int16)).max() > 1000)


def test_opus_packets_decode_in_order_to_mono_at_once() -> None:
    out: list[bytes] = []
    decoder = LoopDecoder(out.append)
    for packet in opus_packets(0.2):
        decoder.decode(OPUS, packet)
    assert [len(pcm) for pcm in out] == [FRAME_BYTES] * 10  # 480 samples of 24 kHz mono each
    assert loud(out[-1])  # the tone, not silence


def test_a_packet_that_does_not_decode_is_counted_and_skipped() -> None:
    out: list[bytes] = []
    decoder = LoopDecoder(out.append)
    good = opus_packets(0.04)
    decoder.decode(OPUS, good[0])
    decoder.decode(OPUS, b"\xff" * 3)
    decoder.decode(OPUS, good[1])
    assert decoder.decode_errors == 1
    assert len(out) == 2
    pcmu = RTCRtpCodecParameters(mimeType="audio/PCMU", clockRate=8000, channels=1, payloadType=0)
    decoder.decode(pcmu, bytes(160))  # never negotiated: refused
    assert decoder.decode_errors == 2
    assert len(out) == 2


def standalone_receiver() -> RTCRtpReceiver:
    """A receiver as setRemoteDescription leaves it, with Opus negotiated as payload type 111."""
    ice = RTCIceTransport(RTCIceGatherer())
    receiver = RTCRtpReceiver(
        "audio", RTCDtlsTransport(ice, [RTCCertificate.generateCertificate()])
    )
    receiver._track = RemoteStreamTrack(kind="audio")  # as setRemoteDescription does
    getattr(receiver, CODECS_ATTRIBUTE)[OPUS_PT] = OPUS  # as receive() does
    return receiver


async def arrive(receiver: RTCRtpReceiver, packets: list[bytes], index: int) -> None:
    packet = RtpPacket(
        payload_type=OPUS_PT,
        sequence_number=1000 + index,
        timestamp=960 * index,
        payload=packets[index],
    )
    await receiver._handle_rtp_packet(packet, arrival_time_ms=0)


async def test_received_packets_come_out_at_once_in_order_and_losses_concealed() -> None:
    receiver = standalone_receiver()
    out: list[bytes] = []
    audio = receive_audio(receiver, out.append, MediaOptions())
    assert isinstance(getattr(receiver, JITTER_BUFFER_ATTRIBUTE), LoopJitterBuffer)
    packets = opus_packets(0.2)  # 10 packets of a tone
    await arrive(receiver, packets, 0)
    assert len(out) == 1  # no prefetch
    for index in (2, 1):  # swapped on the way
        await arrive(receiver, packets, index)
    assert len(out) == 3
    for index in (4, 5, 6, 7, 8, 9):  # 3 is lost
        await arrive(receiver, packets, index)
    assert len(out) == 10  # 9 received + 1 concealed, each 20 ms
    assert all(len(pcm) == FRAME_BYTES for pcm in out)
    assert loud(out[3])  # the voice carried on through the gap
    assert audio.counters() == {"lost_packets": 1, "late_packets": 0, "decode_errors": 0}
    assert getattr(receiver, DECODER_QUEUE_ATTRIBUTE).qsize() == 0  # aiortc's thread stays idle
    await audio.stop()
    await arrive(receiver, opus_packets(0.24), 10)
    assert len(out) == 10


async def test_aiortcs_jitter_buffer_in_front_holds_four_packets() -> None:
    receiver = standalone_receiver()
    out: list[bytes] = []
    receive_audio(receiver, out.append, MediaOptions(reorder_buffer=False))
    packets = opus_packets(0.2)
    for index in range(4):
        await arrive(receiver, packets, index)
    assert out == []  # 80 ms of prefetch
    for index in range(4, 10):
        await arrive(receiver, packets, index)
    assert len(out) == 6 and all(len(pcm) == FRAME_BYTES for pcm in out)


async def test_aiortcs_decoder_path_reads_and_resamples_the_track() -> None:
    receiver = standalone_receiver()
    out: list[bytes] = []
    audio = receive_audio(receiver, out.append, MediaOptions(loop_decoder=False))
    assert isinstance(getattr(receiver, JITTER_BUFFER_ATTRIBUTE), JitterBuffer)  # untouched
    decoder = OpusDecoder()  # aiortc's decoder thread's: 48 kHz stereo frames
    assert isinstance(receiver.track, RemoteStreamTrack)
    track_queue: asyncio.Queue[AudioFrame | None] = receiver.track._queue
    for index, packet in enumerate(opus_packets(0.2)):
        for frame in decoder.decode(JitterFrame(packet, 960 * index)):
            assert isinstance(frame, AudioFrame)
            assert (frame.sample_rate, len(frame.layout.channels)) == (48_000, 2)
            frame.time_base = fractions.Fraction(1, 48_000)
            await track_queue.put(frame)
    await track_queue.put(None)  # the end of the track, as aiortc's thread ends it
    await asyncio.sleep(0.05)
    pcm = b"".join(out)
    # 24 kHz mono, minus what the resampler still holds
    assert 0.18 * PCM_RATE_HZ * 2 <= len(pcm) <= 0.2 * PCM_RATE_HZ * 2
    assert loud(pcm)
    assert audio.counters() == {}
    await audio.stop()
