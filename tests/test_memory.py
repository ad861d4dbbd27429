"""relay.memory: freed C-heap pages go back to the operating system when the process is idle."""

from __future__ import annotations

import os
import resource

import pytest

from relay.memory import release_free_memory

pytestmark = pytest.mark.unit


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc")
def test_release_free_memory_gives_freed_heap_pages_back() -> None:
    release_free_memory()
    # 1 KiB objects come from malloc's heap (not mmap); keep every 64th to fragment it, as a
    # burst of sessions does.
    chunks = [bytes(1024) + bytes([i % 256]) for i in range(150_000)]
    kept = chunks[::64]
    grown = rss_mb()
    del chunks
    before_trim = rss_mb()
    assert release_free_memory()
    after_trim = rss_mb()
    assert grown - after_trim > 50  # most of the ~150 MB is back with the system
    assert after_trim < before_trim
    del kept  # held until here, so the freed pages lay between live objects
