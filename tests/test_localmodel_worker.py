"""iterate_in_thread: how a CPU-heavy local model streams from a thread.

Pins: items arrive in order and the work runs off the event loop's thread; at most
`max_queued` items wait for a slow consumer; stopping early (break or cancellation) sets the
producer's stop flag and ends the thread; a producer error reaches the consumer.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator

import pytest

from localmodel.worker import iterate_in_thread

pytestmark = pytest.mark.unit


async def test_iterate_in_thread_yields_in_order_off_the_loop_thread() -> None:
    threads: set[str] = set()

    def produce(stop: threading.Event) -> Iterator[int]:
        for index in range(20):
            threads.add(threading.current_thread().name)
            yield index

    items = [item async for item in iterate_in_thread(produce, name="test-worker")]
    assert items == list(range(20))
    assert threads == {"test-worker"}


async def test_iterate_in_thread_bounds_what_waits_for_the_consumer() -> None:
    produced: list[int] = []

    def produce(stop: threading.Event) -> Iterator[int]:
        for index in range(1000):
            produced.append(index)
            yield index

    stream = iterate_in_thread(produce, max_queued=3)
    assert await anext(stream) == 0
    await asyncio.sleep(0.2)
    # One consumed, three queued, one produced and blocked waiting for room.
    assert len(produced) <= 1 + 3 + 1
    await stream.aclose()


async def test_iterate_in_thread_stops_producer_on_cancel() -> None:
    stopped = threading.Event()
    started = asyncio.Event()

    def produce(stop: threading.Event) -> Iterator[int]:
        index = 0
        try:
            while True:
                time.sleep(0.01)  # a slow synthesis step
                index += 1
                yield index
        finally:
            stopped.set()

    async def consume() -> None:
        async for _ in iterate_in_thread(produce):
            started.set()

    task = asyncio.create_task(consume())
    await started.wait()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert await asyncio.to_thread(stopped.wait, 2.0)


async def test_iterate_in_thread_raises_producer_errors() -> None:
    def produce(stop: threading.Event) -> Iterator[int]:
        yield 1
        raise RuntimeError("synthesis failed")

    received: list[int] = []
    with pytest.raises(RuntimeError, match="synthesis failed"):
        async for item in iterate_in_thread(produce):
            received.append(item)
    assert received == [1]
