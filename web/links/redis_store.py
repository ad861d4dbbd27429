"""Demo links and limits shared by several relay instances through one Redis.

With `VOICE_RELAY_REDIS_URL` set, every instance, its admin API and the CLI read and write the
same links, and the per-IP rate and hourly quotas are counted once across them. Without it,
links stay in the embedded SQLite file and the limits in memory (one machine).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import cast

from limits.aio.storage import MovingWindowSupport
from redis.asyncio import Redis
from redis.exceptions import RedisError, WatchError

from ..settings import Settings, secret_value
from .limits import redis_rate_storage
from .model import DemoLink, LinkCreate, LinkUpdate, utcnow
from .store import LINKS_FILE, LinkExists, LinkNotFound, LinkStore, SqliteLinkStore

__all__ = ["RedisError", "RedisLinkStore", "SharedState", "shared_state"]

LINKS_KEY = "voice-relay:links"  # one hash: slug -> the link as JSON
# A lost Redis must refuse a request within seconds, not hang it.
REDIS_TIMEOUT_S = 2.0
MAX_WATCH_RETRIES = 20


def redis_client(url: str) -> Redis:
    return Redis.from_url(
        url, socket_connect_timeout=REDIS_TIMEOUT_S, socket_timeout=REDIS_TIMEOUT_S
    )


class RedisLinkStore:
    """Links as JSON documents in one Redis hash; changes are read-modify-write under WATCH."""

    def __init__(self, client: Redis) -> None:
        self._redis = client

    async def create(self, link: LinkCreate) -> DemoLink:
        stored = DemoLink.model_validate(link.model_dump())
        added = self._redis.hsetnx(LINKS_KEY, stored.slug, stored.model_dump_json())
        if not await cast(Awaitable[bool], added):
            raise LinkExists(f"a link named {stored.slug!r} already exists")
        return stored

    async def get(self, slug: str) -> DemoLink:
        body = await cast(Awaitable[bytes | None], self._redis.hget(LINKS_KEY, slug))
        if body is None:
            raise LinkNotFound(slug)
        return DemoLink.model_validate_json(body)

    async def list(self) -> list[DemoLink]:
        bodies = await cast(Awaitable[dict[bytes, bytes]], self._redis.hgetall(LINKS_KEY))
        return [DemoLink.model_validate_json(bodies[slug]) for slug in sorted(bodies)]

    async def _modify(self, slug: str, change: Callable[[DemoLink], DemoLink]) -> DemoLink:
        # WATCH: another instance's write between our read and our write makes us read again.
        for _ in range(MAX_WATCH_RETRIES):
            async with self._redis.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(LINKS_KEY)
                    body = await cast(Awaitable[bytes | None], pipe.hget(LINKS_KEY, slug))
                    if body is None:
                        raise LinkNotFound(slug)
                    link = change(DemoLink.model_validate_json(body))
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.hset(LINKS_KEY, slug, link.model_dump_json())
                    await pipe.execute()
                    return link
                except WatchError:
                    continue
        raise RedisError(f"link {slug!r} kept changing while being written")

    async def update(self, slug: str, change: LinkUpdate) -> DemoLink:
        return await self._modify(slug, lambda link: link.updated(change))

    async def revoke(self, slug: str) -> DemoLink:
        def revoked(link: DemoLink) -> DemoLink:
            if link.revoked_at is not None:
                return link
            return link.model_copy(update={"revoked_at": utcnow()})

        return await self._modify(slug, revoked)


@dataclass
class SharedState:
    links: LinkStore
    rate_storage: MovingWindowSupport | None  # None: SessionLimiter's in-memory default
    redis: Redis | None = None  # the client, for what else instances share (web/cluster)


@asynccontextmanager
async def shared_state(settings: Settings) -> AsyncIterator[SharedState]:
    """Redis when configured, else SQLite in the data directory and limits in memory."""
    url = secret_value(settings.redis_url)
    if not url:
        yield SharedState(SqliteLinkStore(settings.data_dir / LINKS_FILE), None)
        return
    client = redis_client(url)
    try:
        storage = redis_rate_storage(url, client)
        yield SharedState(RedisLinkStore(client), storage, client)
    finally:
        await client.aclose()
