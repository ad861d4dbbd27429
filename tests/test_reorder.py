"""ReorderBuffer: packets in sequence order at once; gaps wait a little, then count as lost.

- in-order packets are released on arrival (no prefetch, unlike aiortc's 80 ms);
- a swapped pair comes out in order as soon as the gap fills;
- a gap waits for `max_wait` later packets, then is released as None (lost), once;
- late packets and duplicates are dropped and counted;
- sequence numbers wrap at 2**16; a jump beyond `max_gap` starts over without a flood of losses.
"""

from __future__ import annotations

import pytest

from relay.reorder import ReorderBuffer

pytestmark = pytest.mark.unit


def feed(buffer: ReorderBuffer[int], seqs: list[int]) -> list[list[int | None]]:
    return [buffer.add(seq, seq) for seq in seqs]


def test_in_order_packets_go_on_at_once() -> None:
    assert feed(ReorderBuffer(), [10, 11, 12]) == [[10], [11], [12]]


def test_a_swapped_pair_comes_out_in_order_when_the_gap_fills() -> None:
    assert feed(ReorderBuffer(), [10, 12, 11, 13]) == [[10], [], [11, 12], [13]]


def test_a_gap_waits_for_max_wait_packets_then_counts_as_lost() -> None:
    buffer: ReorderBuffer[int] = ReorderBuffer(max_wait=2)
    assert feed(buffer, [10, 12, 13, 14, 15]) == [[10], [], [], [None, 12, 13, 14], [15]]
    assert buffer.lost == 1
    assert buffer.add(11, 11) == []  # too late now: dropped, counted
    assert buffer.late == 1


def test_duplicates_are_dropped() -> None:
    buffer: ReorderBuffer[int] = ReorderBuffer()
    assert feed(buffer, [5, 5, 7, 7, 6]) == [[5], [], [], [], [6, 7]]
    assert buffer.late == 2


def test_sequence_numbers_wrap() -> None:
    assert feed(ReorderBuffer(), [65534, 0, 65535, 1]) == [[65534], [], [65535, 0], [1]]


def test_a_jump_starts_over_without_losses_and_keeps_what_waited() -> None:
    buffer: ReorderBuffer[int] = ReorderBuffer(max_wait=2, max_gap=50)
    assert feed(buffer, [100, 102]) == [[100], []]
    assert buffer.add(5000, 5000) == [102, 5000]
    assert buffer.lost == 0
    assert buffer.add(5001, 5001) == [5001]
