"""How fast a client may send audio: a token bucket over the pcm its events carry."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from protocol.audio import BYTES_PER_MS

from .client_events import ClientEventError


@dataclass(frozen=True)
class AppendLimit:
    """`speed` times real time sustained, after a burst of `burst_ms` of audio at once."""

    speed: float = 2.0
    burst_ms: int = 5_000


class AppendBudget:
    """The audio one connection may still send now; a chunk beyond it is refused whole.

    Charged on the base64 length before decoding, so a refused chunk costs no decoding work.
    """

    def __init__(self, limit: AppendLimit, clock: Callable[[], float] = time.monotonic) -> None:
        self._limit = limit
        self._clock = clock
        self._capacity = limit.burst_ms * BYTES_PER_MS
        self._refill_per_s = limit.speed * 1000 * BYTES_PER_MS
        self._tokens = float(self._capacity)
        self._at = clock()

    def charge(self, base64_chars: int, param: str = "audio") -> None:
        now = self._clock()
        self._tokens = min(self._capacity, self._tokens + (now - self._at) * self._refill_per_s)
        self._at = now
        pcm_bytes = base64_chars * 3 // 4
        if pcm_bytes > self._tokens:
            raise ClientEventError(
                "input_audio_rate_exceeded",
                f"Audio arrives faster than {self._limit.speed:g}x real time (after a "
                f"{self._limit.burst_ms / 1000:g} s burst); this chunk of "
                f"{pcm_bytes / BYTES_PER_MS:.0f} ms was dropped. Send audio at its own pace.",
                param=param,
            )
        self._tokens -= pcm_bytes
