"""Uplink: the browser's decoded audio (pcm16 24 kHz mono) on to the model, and when it came."""

from __future__ import annotations

import asyncio
import bisect
from collections import deque
from collections.abc import Callable

from protocol.audio import pcm_ms

TIMELINE_ENTRIES = 1_000  # ~20 s of 20 ms frames: enough to place the end of a user turn


class Uplink:
    """Hands each chunk the receiver decodes (`feed`) to `sink`, remembering when it arrived."""

    def __init__(self, sink: Callable[[bytes], None]) -> None:
        self._sink = sink
        self._loop = asyncio.get_running_loop()
        self.sent_ms = 0.0
        # (audio ms streamed so far, loop time it arrived): maps backend audio offsets to time.
        self._timeline_ms: deque[float] = deque(maxlen=TIMELINE_ENTRIES)
        self._timeline_t: deque[float] = deque(maxlen=TIMELINE_ENTRIES)

    def feed(self, pcm: bytes) -> None:
        if not pcm:
            return
        self._sink(pcm)
        self.sent_ms += pcm_ms(pcm)
        self._timeline_ms.append(self.sent_ms)
        self._timeline_t.append(self._loop.time())

    def time_at(self, audio_ms: float) -> float | None:
        """Loop time at which the audio at `audio_ms` into the stream arrived, if still known."""
        index = bisect.bisect_left(self._timeline_ms, audio_ms)
        if index >= len(self._timeline_ms) or not self._timeline_ms:
            return None
        if index == 0 and audio_ms < self._timeline_ms[0] - 40:
            return None
        return self._timeline_t[index]
