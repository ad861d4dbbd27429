"""ReorderBuffer: received audio packets in sequence order, with no added delay.

aiortc's audio jitter buffer is built for a loudspeaker: it holds four frames (80 ms) before it
releases one, and a lost packet stalls it until sixteen have piled up (320 ms, aiortc issue
#543). The relay's listener is a model, which needs the audio in order, not smoothly timed: a
packet that arrives in order goes on at once; a gap waits until `max_wait` later packets have
arrived (40 ms by default), then counts as lost and is concealed by the decoder.
"""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")

SEQUENCE_MODULUS = 1 << 16  # RTP sequence numbers are 16 bits and wrap


class ReorderBuffer(Generic[T]):
    """`add(seq, item)` returns what can go on now, in order; None stands for a lost packet."""

    def __init__(self, max_wait: int = 2, max_gap: int = 50) -> None:
        self._max_wait = max_wait
        self._max_gap = max_gap  # a jump this far ahead is a new stream, not a loss
        self._next: int | None = None
        self._pending: dict[int, T] = {}
        self.lost = 0
        self.late = 0

    def add(self, seq: int, item: T) -> list[T | None]:
        if self._next is None:
            self._next = seq
        ahead = (seq - self._next) % SEQUENCE_MODULUS
        if ahead >= SEQUENCE_MODULUS // 2 or seq in self._pending:
            self.late += 1  # already released, skipped as lost, or a duplicate
            return []
        released: list[T | None] = []
        if ahead > self._max_gap:  # the sender jumped: hand on what waited, start again here
            released = [self._pending[s] for s in sorted(self._pending, key=self._distance)]
            self._pending.clear()
            self._next = seq
        self._pending[seq] = item
        while self._pending:
            if self._next in self._pending:
                released.append(self._pending.pop(self._next))
            elif len(self._pending) > self._max_wait:
                released.append(None)
                self.lost += 1
            else:
                break
            self._next = (self._next + 1) % SEQUENCE_MODULUS
        return released

    def _distance(self, seq: int) -> int:
        assert self._next is not None
        return (seq - self._next) % SEQUENCE_MODULUS
