"""Uplink: the browser's audio track, resampled to the model's format and streamed to it."""

from __future__ import annotations

import asyncio
import bisect
from collections import deque
from collections.abc import Callable

from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from protocol.audio import pcm_ms

from .audio import ModelResampler

TIMELINE_ENTRIES = 1_000  # ~20 s of 20 ms frames: enough to place the end of a user turn


class Uplink:
    """Reads decoded frames, converts them to pcm16 24 kHz mono and hands them to `sink`."""

    def __init__(self, track: MediaStreamTrack, sink: Callable[[bytes], None]) -> None:
        self._track = track
        self._sink = sink
        self._resampler = ModelResampler()
        self.sent_ms = 0.0
        # (audio ms streamed so far, loop time it arrived): maps backend audio offsets to time.
        self._timeline_ms: deque[float] = deque(maxlen=TIMELINE_ENTRIES)
        self._timeline_t: deque[float] = deque(maxlen=TIMELINE_ENTRIES)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                frame = await self._track.recv()
                pcm = self._resampler.convert(frame)  # type: ignore[arg-type]
                if not pcm:
                    continue
                self._sink(pcm)
                self.sent_ms += pcm_ms(pcm)
                self._timeline_ms.append(self.sent_ms)
                self._timeline_t.append(loop.time())
        except MediaStreamError:
            return

    def time_at(self, audio_ms: float) -> float | None:
        """Loop time at which the audio at `audio_ms` into the stream arrived, if still known."""
        index = bisect.bisect_left(self._timeline_ms, audio_ms)
        if index >= len(self._timeline_ms) or not self._timeline_ms:
            return None
        if index == 0 and audio_ms < self._timeline_ms[0] - 40:
            return None
        return self._timeline_t[index]
