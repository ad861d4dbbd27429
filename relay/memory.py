"""Give freed memory back to the operating system once a process has no live session.

After a burst of conversations CPython's and the C libraries' allocators keep the pages they
freed (RSS stays at its high-water mark). With no live session nothing is time-critical, so
the registry collects cycles and asks glibc to return free heap pages (`malloc_trim`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from functools import cache


@cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name is not None else None
    if libc is None or not hasattr(libc, "malloc_trim"):  # glibc only
        return None
    libc.malloc_trim.argtypes = [ctypes.c_size_t]
    libc.malloc_trim.restype = ctypes.c_int
    return libc


def release_free_memory() -> bool:
    """Collect garbage cycles and trim the C heap; True if the heap gave pages back."""
    gc.collect()
    libc = _libc()
    return bool(libc is not None and libc.malloc_trim(0))
