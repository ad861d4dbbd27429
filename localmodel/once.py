"""Objects a process makes once, on first use, and shares: loaded models, child processes."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def process_wide(factory: Callable[[], T]) -> Callable[[], T]:
    """`factory()`'s result, made by the first caller (others wait); a failure is not kept."""
    lock = threading.Lock()
    made: list[T] = []

    @functools.wraps(factory)
    def shared() -> T:
        with lock:
            if not made:
                made.append(factory())
            return made[0]

    return shared
