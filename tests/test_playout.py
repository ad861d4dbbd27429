"""PlayoutTrack: paced 20 ms frames and packets, silence when empty, flush, per-item accounting."""

from __future__ import annotations

import asyncio
from fractions import Fraction

import pytest
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame

from protocol.audio import FRAME_BYTES, PCM_RATE_HZ
from relay.media import MediaOptions
from relay.playout import PlayoutTrack

from .speech import tone

pytestmark = pytest.mark.unit


async def test_playout_emits_silence_when_empty() -> None:
    track = PlayoutTrack()
    assert await track.next_pcm() == bytes(FRAME_BYTES)


async def test_playout_paces_frames_at_20_ms() -> None:
    track = PlayoutTrack()
    loop = asyncio.get_running_loop()
    await track.next_pcm()
    start = loop.time()
    packets = [await track.recv() for _ in range(10)]
    elapsed = loop.time() - start
    assert [p.pts for p in packets] == [480 * i for i in range(1, 11)]
    assert all(p.time_base == Fraction(1, PCM_RATE_HZ) for p in packets)
    assert 0.18 <= elapsed <= 0.4


async def test_playout_without_opus_packets_sends_48_khz_frames_for_aiortc() -> None:
    track = PlayoutTrack(options=MediaOptions(opus_packets=False))
    pcm = tone(40)
    track.push("a", pcm)
    frames = [await track.recv() for _ in range(3)]
    assert all(isinstance(f, AudioFrame) for f in frames)
    assert [(f.sample_rate, f.samples) for f in frames] == [(48_000, 960)] * 3  # type: ignore[union-attr]
    assert [f.pts for f in frames] == [0, 960, 1920]
    assert all(f.time_base == Fraction(1, 48_000) for f in frames)
    track.stop()


async def test_playout_plays_queued_audio_in_order_and_counts_sent_ms() -> None:
    started: list[str | None] = []
    drained: list[bool] = []
    track = PlayoutTrack(on_item_started=started.append, on_drained=lambda: drained.append(True))
    pcm = tone(50)  # 2.5 frames
    track.push("a", pcm)
    out = b"".join([await track.next_pcm() for _ in range(3)])
    assert out[: len(pcm)] == pcm
    assert out[len(pcm) :] == bytes(3 * FRAME_BYTES - len(pcm))
    item = track.item("a")
    assert item is not None and item.received_ms == 50 and item.sent_ms == 50
    assert started == ["a"] and drained == [True]


async def test_playout_flush_drops_queued_audio() -> None:
    track = PlayoutTrack()
    track.push("a", tone(1000))
    await track.next_pcm()
    await track.next_pcm()
    cut = track.flush()
    assert cut is not None and cut.item_id == "a" and cut.sent_ms == 40
    assert track.buffered_ms == 0 and not track.is_playing
    assert await track.next_pcm() == bytes(FRAME_BYTES)
    assert cut.sent_ms == 40 and cut.received_ms == 1000


async def test_playout_items_boundary_inside_one_frame() -> None:
    started: list[str | None] = []
    track = PlayoutTrack(on_item_started=started.append)
    track.push("a", tone(10))
    track.push("b", tone(30))
    await track.next_pcm()
    await track.next_pcm()
    a, b = track.item("a"), track.item("b")
    assert a is not None and b is not None
    assert (a.sent_ms, b.sent_ms) == (10, 30)
    assert started == ["a", "b"]


async def test_playout_bounded_buffer_drops_and_counts() -> None:
    track = PlayoutTrack()
    track.push("a", bytes(48 * 120_000))
    track.push("a", bytes(960))
    assert track.dropped_bytes == 960
    assert track.buffered_ms == 120_000


async def test_playout_stop_is_idempotent_and_ends_recv() -> None:
    track = PlayoutTrack()
    track.stop()
    track.stop()
    with pytest.raises(MediaStreamError):
        await track.next_pcm()
