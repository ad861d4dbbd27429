"""PlayoutTrack pacing of real-time streams: underruns and bursts do not turn into latency.

- audio that arrives after an underrun goes out at once and pacing restarts from it (before,
  every underrun added 20 ms of latency for the rest of the stream);
- audio queued while the playout is busy keeps its pace;
- a burst on a real-time stream drains back to one spare frame (catch-up), while a model reply
  queued faster than real time is paced frame by frame;
- with `wake_on_audio` or `catch_up` off (MediaOptions), the relay as it was before each.
"""

from __future__ import annotations

import asyncio
import statistics

import pytest

from protocol.audio import FRAME_BYTES
from relay.media import MediaOptions
from relay.playout import PlayoutTrack

from .speech import tone

pytestmark = pytest.mark.unit


async def first_frame_after_silence_s(track: PlayoutTrack) -> float:
    """How long after the last silent frame a push 5 ms later goes out."""
    loop = asyncio.get_running_loop()
    await track.next_pcm()  # silence: nothing queued yet
    start = loop.time()
    pending = asyncio.create_task(track.next_pcm())
    await asyncio.sleep(0.005)
    pcm = tone(40)
    track.push("a", pcm)
    assert await pending == pcm[:FRAME_BYTES]
    return loop.time() - start


async def test_playout_sends_audio_arriving_after_silence_at_once() -> None:
    track = PlayoutTrack()
    loop = asyncio.get_running_loop()
    assert await first_frame_after_silence_s(track) < 0.015  # not at the 20 ms tick
    arrived = loop.time()
    await track.next_pcm()
    assert 0.015 <= loop.time() - arrived <= 0.035  # paced from the early frame
    track.stop()


async def test_without_wake_on_audio_it_waits_for_the_tick() -> None:
    track = PlayoutTrack(options=MediaOptions(wake_on_audio=False))
    assert await first_frame_after_silence_s(track) >= 0.018
    track.stop()


async def test_playout_keeps_pace_while_audio_is_queued() -> None:
    track = PlayoutTrack()
    loop = asyncio.get_running_loop()
    track.push("a", tone(40))
    await track.next_pcm()
    start = loop.time()
    pending = asyncio.create_task(track.next_pcm())
    await asyncio.sleep(0.005)
    track.push("a", tone(20))  # not starved: waits for its tick
    await pending
    assert loop.time() - start >= 0.015
    track.stop()


async def burst_then_real_time(track: PlayoutTrack) -> list[int]:
    """The buffer level after each frame: 100 ms pushed at once, then 20 ms every 20 ms."""
    loop = asyncio.get_running_loop()
    track.push("a", tone(100))  # a burst: 100 ms at once, then real time

    async def produce() -> None:
        start = loop.time()
        for i in range(1, 70):
            await asyncio.sleep(max(0.0, start + i * 0.02 - loop.time()))
            track.push("a", tone(20))

    producer = asyncio.create_task(produce())
    levels = []
    while not producer.done():
        await track.next_pcm()
        levels.append(track.buffered_ms)
    await producer
    track.stop()
    return levels


async def test_playout_catches_up_a_real_time_stream_after_a_burst() -> None:
    levels = await burst_then_real_time(PlayoutTrack())
    assert max(levels[:20]) >= 80  # the burst stayed at first
    assert levels[-1] <= 40  # then drained towards one spare frame


async def test_without_catch_up_the_burst_stays() -> None:
    levels = await burst_then_real_time(PlayoutTrack(options=MediaOptions(catch_up=False)))
    assert statistics.median(levels[-20:]) >= 60  # still there at the end (catch-up: <= 40)


async def test_playout_paces_a_model_reply_without_catching_up() -> None:
    track = PlayoutTrack()
    loop = asyncio.get_running_loop()
    track.push("a", tone(2000))  # a reply faster than real time: far above the bound
    await track.next_pcm()
    start = loop.time()
    for _ in range(40):
        await track.next_pcm()
    assert loop.time() - start >= 0.78
    assert 1150 <= track.buffered_ms <= 1200
    track.stop()
