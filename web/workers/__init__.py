"""Every core of one machine: a signalling front and media worker processes (VOICE_RELAY_WORKERS).

The front (`create_app(settings, workers=N)`) serves pages, links, admission, /metrics and the
embedded local model; `WorkerPool` places each session on the least-loaded worker
(web/workers/worker.py), which runs it whole. docs/architecture.md, "Every core of a machine".
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.datastructures import State

from relay import EndReason, MediaOptions

from ..settings import DEFAULT_MAX_SESSIONS, Settings
from .pool import WorkerPool


def pool_of(state: State) -> WorkerPool | None:
    """The app's media workers, if its sessions run in them."""
    pool = getattr(state, "workers", None)
    return pool if isinstance(pool, WorkerPool) else None


def relay_sessions(state: State) -> int:
    """The relay's sessions of the whole machine: in this process or placed on its workers."""
    pool = pool_of(state)
    return len(getattr(state, "registry", ())) + (len(pool) if pool is not None else 0)


def machine_settings(settings: Settings, workers: int) -> Settings:
    """With `workers` media processes the default session limit is per worker: one core each
    carries DEFAULT_MAX_SESSIONS relayed calls (docs/performance.md). A configured limit, and
    the embedded assistant's (its model runs in the front, not in the workers), stay as they are."""
    if workers <= 1 or settings.max_sessions is not None:
        return settings
    if settings.resolved_max_sessions != DEFAULT_MAX_SESSIONS:
        return settings
    return settings.model_copy(update={"max_sessions": DEFAULT_MAX_SESSIONS * workers})


@asynccontextmanager
async def workers_running(pool: WorkerPool | None, media: MediaOptions) -> AsyncIterator[None]:
    """The workers from their start until the block ends; their calls end before they stop."""
    if pool is None:
        yield
        return
    if media != MediaOptions():
        raise ValueError("media options other than the product's need workers=1 (benchmarks)")
    await pool.start()
    try:
        yield
    finally:
        await pool.close_all(EndReason.SERVER_SHUTDOWN)
        await pool.stop()


__all__ = ["WorkerPool", "machine_settings", "pool_of", "relay_sessions", "workers_running"]
