"""PlayoutTrack after an underrun: late audio goes out at once and pacing restarts from it.

Without this every underrun (audio arriving just after its tick) added 20 ms of latency for
the rest of the stream; at 10 loopback sessions that was 40-60 ms (docs/performance.md).
"""

from __future__ import annotations

import asyncio

import pytest

from relay.audio import FRAME_BYTES
from relay.playout import PlayoutTrack

from .media import tone_pcm

pytestmark = pytest.mark.unit


def frame_bytes(frame: object) -> bytes:
    return bytes(frame.planes[0])[: frame.samples * 2]  # type: ignore[attr-defined]


async def test_playout_sends_audio_arriving_after_silence_at_once() -> None:
    track = PlayoutTrack()
    loop = asyncio.get_running_loop()
    await track.recv()  # silence: nothing queued yet
    start = loop.time()
    pending = asyncio.create_task(track.recv())
    await asyncio.sleep(0.005)
    pcm = tone_pcm(0.04)
    track.push("a", pcm)
    frame = await pending
    arrived = loop.time()
    assert arrived - start < 0.015  # not at the 20 ms tick
    assert frame_bytes(frame) == pcm[:FRAME_BYTES]
    await track.recv()
    assert 0.015 <= loop.time() - arrived <= 0.035  # paced from the early frame
    track.stop()


async def test_playout_keeps_pace_while_audio_is_queued() -> None:
    track = PlayoutTrack()
    loop = asyncio.get_running_loop()
    track.push("a", tone_pcm(0.04))
    await track.recv()
    start = loop.time()
    pending = asyncio.create_task(track.recv())
    await asyncio.sleep(0.005)
    track.push("a", tone_pcm(0.02))  # not starved: waits for its tick
    await pending
    assert loop.time() - start >= 0.015
    track.stop()
