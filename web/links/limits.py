"""Per-link concurrency and hourly quotas, and a per-IP session rate limit.

The per-IP rate and the hourly quota are moving windows kept in a `limits` storage: in memory by
default, so each relay process counts its own share; with `VOICE_RELAY_REDIS_URL` its Redis one,
so all instances count together. Concurrency is a `Concurrency`: counted here, in the process
that runs the sessions, by default; with Redis, leases every instance sees (web/cluster/leases.py).
"""

from __future__ import annotations

import math
import secrets
import time
from dataclasses import dataclass
from typing import Protocol

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


class Concurrency(Protocol):
    """Places held per link: `take` one (a holder id, or None when all `limit` are held)."""

    async def take(self, slug: str, limit: int) -> str | None: ...

    def release(self, slug: str, holder: str) -> None:
        """Frees the place soon (a session ended); never blocks."""

    async def give_back(self, slug: str, holder: str) -> None:
        """Frees the place before returning (the caller may be retried elsewhere at once),
        also when `release` has begun freeing it; nothing if it is free already."""

    def active(self, slug: str) -> int:
        """Places this process holds for `slug`."""


class LocalConcurrency:
    """Places counted in this process: one machine, one relay process."""

    def __init__(self) -> None:
        self._held: dict[str, set[str]] = {}

    async def take(self, slug: str, limit: int) -> str | None:
        # No await between the check and the add: two offers cannot both take the last place.
        held = self._held.setdefault(slug, set())
        if len(held) >= limit:
            return None
        holder = secrets.token_urlsafe(9)
        held.add(holder)
        return holder

    def release(self, slug: str, holder: str) -> None:
        held = self._held.get(slug)
        if held is not None:
            held.discard(holder)
            if not held:
                del self._held[slug]

    async def give_back(self, slug: str, holder: str) -> None:
        self.release(slug, holder)

    def active(self, slug: str) -> int:
        return len(self._held.get(slug, ()))


@dataclass(eq=False)
class Lease:
    """One admitted session; `release()` when it ends (idempotent)."""

    limiter: SessionLimiter
    slug: str | None
    ip: str
    holder: str | None = None  # the link's concurrency place
    released: bool = False
    refunded: bool = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            if self.slug is not None and self.holder is not None:
                self.limiter.concurrency.release(self.slug, self.holder)

    async def refund(self) -> None:
        """The session never started through no fault of the caller (the server was full):
        free its place at once and take it off the per-IP rate and the link's hourly quota."""
        self.released = True
        if self.slug is not None and self.holder is not None:
            # Also after release(): a release still under way is finished before returning.
            await self.limiter.concurrency.give_back(self.slug, self.holder)
        if not self.refunded:
            self.refunded = True
            await self.limiter._refund(self.slug, self.ip)


class SessionLimiter:
    """Admits sessions within the per-IP rate and each link's concurrency and hourly quota."""

    def __init__(
        self,
        per_ip_per_minute: int,
        storage: MovingWindowSupport | None = None,
        concurrency: Concurrency | None = None,
    ) -> None:
        storage = storage if storage is not None else MemoryStorage()
        self.per_ip_per_minute = per_ip_per_minute
        self._per_ip = MovingWindow(storage, "ip", MINUTE_S)
        self._hourly = MovingWindow(storage, "link", HOUR_S)
        self.concurrency: Concurrency = concurrency or LocalConcurrency()

    def active(self, slug: str) -> int:
        return self.concurrency.active(slug)

    async def acquire(self, link: DemoLink | None, ip: str) -> Lease:
        wait_s = await self._per_ip.take(ip, self.per_ip_per_minute)
        if wait_s is not None:
            raise RateLimited(
                "Too many conversations started from your address; please wait a minute.", wait_s
            )
        if link is None:
            return Lease(self, None, ip)
        try:
            holder = await self._take_link(link)
        except RateLimited:
            await self._per_ip.give_back(ip)  # refused for the link's sake, not the address's
            raise
        return Lease(self, link.slug, ip, holder)

    async def _take_link(self, link: DemoLink) -> str:
        slug, limits = link.slug, link.limits
        holder = await self.concurrency.take(slug, limits.max_concurrent)
        if holder is None:
            raise RateLimited(
                "This demo is busy: all its conversations are in use. Try again shortly.",
                CONCURRENCY_RETRY_S,
            )
        try:
            wait_s = await self._hourly.take(slug, limits.sessions_per_hour)
        except BaseException:
            self.concurrency.release(slug, holder)
            raise
        if wait_s is not None:
            await self.concurrency.give_back(slug, holder)
            raise RateLimited(
                "This demo has reached its conversations for this hour. Try again later.", wait_s
            )
        return holder

    async def _refund(self, slug: str | None, ip: str) -> None:
        await self._per_ip.give_back(ip)
        if slug is not None:
            await self._hourly.give_back(slug)
