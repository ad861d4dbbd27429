"""Run a blocking producer (ASR, TTS, ...) on a named thread as a cancellable async iterator."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
from collections.abc import AsyncGenerator, Callable, Iterator
from typing import TypeVar

T = TypeVar("T")

logger = logging.getLogger(__name__)

_POLL_S = 0.05


@dataclasses.dataclass(frozen=True)
class _Failure:
    error: Exception


class _End:
    pass


async def iterate_in_thread(
    produce: Callable[[threading.Event], Iterator[T]],
    *,
    max_queued: int = 4,
    name: str = "localmodel-worker",
) -> AsyncGenerator[T, None]:
    """Yields what `produce(stop)` yields, computed on its own thread.

    At most `max_queued` items wait for the consumer (the thread blocks beyond that). When the
    consumer stops early (break, cancellation, aclose), `stop` is set; the producer should check
    it between expensive steps, and its further items are discarded. The loop never waits for
    the thread to finish its current step.
    """
    loop = asyncio.get_running_loop()
    items: asyncio.Queue[T | _Failure | _End] = asyncio.Queue()  # bounded by `room`
    room = threading.Semaphore(max_queued)
    stop = threading.Event()

    def deliver(item: T | _Failure | _End) -> None:
        try:
            loop.call_soon_threadsafe(items.put_nowait, item)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            stop.set()

    def work() -> None:
        iterator = produce(stop)
        try:
            for item in iterator:
                while not room.acquire(timeout=_POLL_S):
                    if stop.is_set():
                        return
                if stop.is_set():
                    return
                deliver(item)
        except Exception as exc:
            deliver(_Failure(exc))
        finally:
            close = getattr(iterator, "close", None)
            try:
                if close is not None:
                    close()  # runs the producer's own cleanup on its thread
            except Exception:
                logger.exception("%s: producer cleanup failed", name)
            deliver(_End())

    thread = threading.Thread(target=work, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item = await items.get()
            if isinstance(item, _End):
                return
            if isinstance(item, _Failure):
                raise item.error
            room.release()
            yield item
    finally:
        stop.set()
