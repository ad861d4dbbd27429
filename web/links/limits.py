"""Per-link concurrency and hourly quotas, and a per-IP session rate limit.

The per-IP rate and the hourly quota are moving windows kept in a `limits` storage: in memory by
default, so each relay process counts its own share; with `VOICE_RELAY_REDIS_URL` its Redis one,
so all instances count together. Concurrency is counted here, in the process that runs the
sessions.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits.aio.storage import MemoryStorage, MovingWindowSupport, RedisStorage
from redis.asyncio import Redis

from .model import DemoLink

HOUR_S = 3600
MINUTE_S = 60
CONCURRENCY_RETRY_S = 30
KEY_PREFIX = "voice-relay"
# Refunds are entries too; a window never holds more than this many of them.
MAX_REFUNDS = 1_000_000


def redis_rate_storage(url: str, client: Redis) -> RedisStorage:
    """`limits`' Redis storage on `client`'s connections (redis-py, not its default coredis).

    Its errors are redis-py's `RedisError`, left unwrapped: admission refuses on them."""
    pool = client.connection_pool  # handed on to redis.asyncio.Redis, whatever limits' hint says
    return RedisStorage(f"async+{url}", implementation="redispy", connection_pool=pool)  # type: ignore[arg-type]


class RateLimited(Exception):
    """A session was refused; `retry_after_s` says when trying again may work."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = max(1, math.ceil(retry_after_s))


class MovingWindow:
    """One moving-window limit (hits per `span_s`) in a `limits` storage, keyed by a name.

    A storage cannot take an entry back out, so giving a hit back adds an entry to a second
    window, and each entry there lets one more hit in for as long as the given-back one counts.
    Keys do not carry the limit, so a link whose quota is edited keeps its count.
    """

    def __init__(self, storage: MovingWindowSupport, kind: str, span_s: int) -> None:
        self._storage = storage
        self._kind = kind
        self._span_s = span_s

    def _key(self, name: str) -> str:
        return f"{KEY_PREFIX}/{self._kind}/{name}"

    async def take(self, name: str, limit: int) -> float | None:
        """Counts a hit if fewer than `limit` are in the window; else the seconds until one
        leaves it."""
        _, refunds = await self._storage.get_moving_window(
            self._key(name) + "/refunds", MAX_REFUNDS, self._span_s
        )
        limit += refunds
        key = self._key(name)
        if await self._storage.acquire_entry(key, limit, self._span_s):
            return None
        oldest, _ = await self._storage.get_moving_window(key, limit, self._span_s)
        return oldest + self._span_s - time.time()

    async def give_back(self, name: str) -> None:
        await self._storage.acquire_entry(self._key(name) + "/refunds", MAX_REFUNDS, self._span_s)


@dataclass(eq=False)
class Lease:
    """One admitted session; `release()` when it ends (idempotent)."""

    limiter: SessionLimiter
    slug: str | None
    ip: str
    released: bool = False
    refunded: bool = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.limiter._release(self.slug)

    async def refund(self) -> None:
        """The session never started through no fault of the caller (the server was full):
        release it and take it off the per-IP rate and the link's hourly quota."""
        self.release()
        if not self.refunded:
            self.refunded = True
            await self.limiter._refund(self.slug, self.ip)


class SessionLimiter:
    """Admits sessions within the per-IP rate and each link's concurrency and hourly quota."""

    def __init__(self, per_ip_per_minute: int, storage: MovingWindowSupport | None = None) -> None:
        storage = storage if storage is not None else MemoryStorage()
        self.per_ip_per_minute = per_ip_per_minute
        self._per_ip = MovingWindow(storage, "ip", MINUTE_S)
        self._hourly = MovingWindow(storage, "link", HOUR_S)
        self._active: dict[str, int] = {}

    def active(self, slug: str) -> int:
        return self._active.get(slug, 0)

    async def acquire(self, link: DemoLink | None, ip: str) -> Lease:
        wait_s = await self._per_ip.take(ip, self.per_ip_per_minute)
        if wait_s is not None:
            raise RateLimited(
                "Too many conversations started from your address; please wait a minute.", wait_s
            )
        if link is None:
            return Lease(self, None, ip)
        try:
            await self._take_link(link)
        except RateLimited:
            await self._per_ip.give_back(ip)  # refused for the link's sake, not the address's
            raise
        return Lease(self, link.slug, ip)

    async def _take_link(self, link: DemoLink) -> None:
        slug, limits = link.slug, link.limits
        if self.active(slug) >= limits.max_concurrent:
            raise RateLimited(
                "This demo is busy: all its conversations are in use. Try again shortly.",
                CONCURRENCY_RETRY_S,
            )
        self._active[slug] = self.active(slug) + 1  # held across the await below
        try:
            wait_s = await self._hourly.take(slug, limits.sessions_per_hour)
        except BaseException:
            self._release(slug)
            raise
        if wait_s is not None:
            self._release(slug)
            raise RateLimited(
                "This demo has reached its conversations for this hour. Try again later.", wait_s
            )

    def _release(self, slug: str | None) -> None:
        if slug is None or slug not in self._active:
            return
        self._active[slug] -= 1
        if self._active[slug] <= 0:
            del self._active[slug]

    async def _refund(self, slug: str | None, ip: str) -> None:
        await self._per_ip.give_back(ip)
        if slug is not None:
            await self._hourly.give_back(slug)
