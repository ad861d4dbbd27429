"""Per-link concurrency as leases in Redis, seen by every instance.

A link's places are one sorted set: member = a holder id, score = when the lease expires (ms, by
Redis's own clock, so instances' clocks need not agree). Taking a place drops expired members
and adds one only while fewer than the limit are left, in one Lua script: two instances cannot
both take the last place. Each instance renews its holders' leases (`renew`, every third of the
TTL, from web/cluster/node.py); an instance killed with SIGKILL stops renewing, and its places
free themselves within the TTL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable
from typing import cast

from redis.asyncio import Redis
from redis.exceptions import RedisError

from .keys import lease_key

logger = logging.getLogger(__name__)

# KEYS[1]: the link's leases; ARGV: holder, limit, ttl_ms. Returns 1 if the place was taken.
TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('PEXPIRE', KEYS[1], 2 * ttl)
return 1
"""

# KEYS: one lease set per holder; ARGV[1]: ttl_ms, then the holders. A lease lost while Redis
# was away (restarted empty) is added again: the call it counts is still running.
RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now + ttl, ARGV[i + 1])
  redis.call('PEXPIRE', key, 2 * ttl)
end
return #KEYS
"""


class RedisLeases:
    """`Concurrency` (web/links/limits.py) on Redis: leases with a TTL this instance renews."""

    def __init__(self, client: Redis, ttl_s: float) -> None:
        self._redis = client
        self._ttl_ms = int(ttl_s * 1000)
        self._take = client.register_script(TAKE)
        self._renew = client.register_script(RENEW)
        self._held: dict[str, str] = {}  # holder -> slug, renewed until released
        self._releasing: dict[str, asyncio.Task[None]] = {}  # holder -> its removal
        # A release waits for a renewal in flight, which could otherwise add the lease again.
        self._renewing = asyncio.Lock()

    async def take(self, slug: str, limit: int) -> str | None:
        holder = secrets.token_urlsafe(12)
        script = self._take(keys=[lease_key(slug)], args=[holder, limit, self._ttl_ms])
        if not await cast(Awaitable[int], script):
            return None
        self._held[holder] = slug  # only now: a renewal must never add a refused holder
        return holder

    def release(self, slug: str, holder: str) -> None:
        if self._held.pop(holder, None) is None:
            return
        task = asyncio.create_task(self._remove(slug, holder), name="lease-release")
        self._releasing[holder] = task
        task.add_done_callback(lambda _: self._releasing.pop(holder, None))

    async def give_back(self, slug: str, holder: str) -> None:
        if self._held.pop(holder, None) is not None:
            await self._remove(slug, holder, quiet=False)
        elif (removal := self._releasing.get(holder)) is not None:
            await asyncio.shield(removal)

    def active(self, slug: str) -> int:
        return sum(1 for held in self._held.values() if held == slug)

    async def _remove(self, slug: str, holder: str, quiet: bool = True) -> None:
        try:
            async with self._renewing:
                await cast(Awaitable[int], self._redis.zrem(lease_key(slug), holder))
        except RedisError as exc:
            if not quiet:
                raise
            # Not renewed any more, the lease frees itself within the TTL.
            logger.warning(
                "could not release a lease of %r now (%s): it expires by itself", slug, exc
            )

    async def renew(self) -> None:
        """Extends every lease this instance holds by the TTL (raises RedisError)."""
        async with self._renewing:
            held = list(self._held.items())
            if held:
                keys = [lease_key(slug) for _, slug in held]
                args: list[str | int] = [self._ttl_ms, *(holder for holder, _ in held)]
                await cast(Awaitable[int], self._renew(keys=keys, args=args))

    async def close(self) -> None:
        """At shutdown: frees every place still held (best effort) and waits for releases."""
        for holder, slug in list(self._held.items()):
            self.release(slug, holder)
        if self._releasing:
            with contextlib.suppress(TimeoutError):
                removals = asyncio.gather(*self._releasing.values(), return_exceptions=True)
                await asyncio.wait_for(removals, 5)
