"""The session directory and instance load in Redis: who runs which conversation, and how full.

Each instance writes, on every heartbeat and at once when a session starts or ends, its own
record (active/max, draining) and one entry per live session, all expiring after the lease TTL:
an instance that dies vanishes from the directory within it. Readers (any instance's admin API,
`DELETE /api/sessions/{id}`, `voice-relay sessions`) see only unexpired entries.
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime
from typing import TypeVar, cast

from pydantic import BaseModel, ValidationError
from redis.asyncio import Redis

from .keys import INSTANCES, SESSIONS, instance_key, session_key

Model = TypeVar("Model", bound=BaseModel)


class SessionEntry(BaseModel):
    id: str
    instance: str
    link: str | None  # the demo link's slug; None for the server's own persona
    backend: str
    model: str
    started_at: datetime


class InstanceLoad(BaseModel):
    id: str
    host: str
    pid: int
    active: int
    max_sessions: int
    draining: bool


class ClusterView(BaseModel):
    instances: list[InstanceLoad]
    sessions: list[SessionEntry]


# KEYS: INSTANCES, SESSIONS, the instance's key, n live session keys, then the ended ones' keys.
# ARGV: ttl_ms, instance id, instance JSON, n, n pairs (session id, JSON), the ended ids.
HEARTBEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
local n = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('SET', KEYS[3], ARGV[3], 'PX', ttl)
redis.call('ZADD', KEYS[1], now + ttl, ARGV[2])
for i = 1, n do
  redis.call('SET', KEYS[3 + i], ARGV[4 + 2 * i], 'PX', ttl)
  redis.call('ZADD', KEYS[2], now + ttl, ARGV[3 + 2 * i])
end
for j = 1, #KEYS - 3 - n do
  redis.call('DEL', KEYS[3 + n + j])
  redis.call('ZREM', KEYS[2], ARGV[4 + 2 * n + j])
end
return n
"""


class RedisDirectory:
    """Reads and writes the directory; every method may raise RedisError."""

    def __init__(self, client: Redis) -> None:
        self._redis = client
        self._heartbeat = client.register_script(HEARTBEAT)

    async def publish(
        self, instance: InstanceLoad, live: list[SessionEntry], ended: list[str], ttl_ms: int
    ) -> None:
        """This instance's record and live sessions (renewed), and its ended ones (removed)."""
        keys = [INSTANCES, SESSIONS, instance_key(instance.id)]
        keys += [session_key(entry.id) for entry in live]
        keys += [session_key(session_id) for session_id in ended]
        args: list[str | int] = [ttl_ms, instance.id, instance.model_dump_json(), len(live)]
        for entry in live:
            args += [entry.id, entry.model_dump_json()]
        args += ended
        await cast(Awaitable[int], self._heartbeat(keys=keys, args=args))

    async def view(self) -> ClusterView:
        seconds, micros = await self._redis.time()
        now_ms = seconds * 1000 + micros // 1000
        instance_ids = await self._live(INSTANCES, now_ms)
        session_ids = await self._live(SESSIONS, now_ms)
        instances = await self._load(InstanceLoad, [instance_key(i) for i in instance_ids])
        sessions = await self._load(SessionEntry, [session_key(s) for s in session_ids])
        sessions.sort(key=lambda entry: (entry.started_at, entry.id))
        return ClusterView(instances=instances, sessions=sessions)

    async def entry(self, session_id: str) -> SessionEntry | None:
        found = await self._load(SessionEntry, [session_key(session_id)])
        return found[0] if found else None

    async def instance_live(self, instance_id: str) -> bool:
        """Whether the instance has sent a heartbeat within the TTL."""
        return bool(await self._redis.exists(instance_key(instance_id)))

    async def forget(self, session_ids: list[str]) -> None:
        """Removes entries whose instance no longer runs them (ended, or the instance died)."""
        if session_ids:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.delete(*(session_key(s) for s in session_ids))
                pipe.zrem(SESSIONS, *session_ids)
                await pipe.execute()

    async def withdraw(self, instance_id: str, session_ids: list[str]) -> None:
        """At shutdown: this instance and the sessions it still lists leave the directory."""
        await self.forget(session_ids)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.delete(instance_key(instance_id))
            pipe.zrem(INSTANCES, instance_id)
            await pipe.execute()

    async def _live(self, index: str, now_ms: int) -> list[str]:
        members = await self._redis.zrangebyscore(index, now_ms, "+inf")
        return sorted(member.decode() for member in members)

    async def _load(self, kind: type[Model], keys: list[str]) -> list[Model]:
        if not keys:
            return []
        bodies = await self._redis.mget(keys)
        found = []
        for body in bodies:
            if body is None:  # expired between the index and the read
                continue
            try:
                found.append(kind.model_validate_json(body))
            except ValidationError:
                continue  # written by another version: not ours to read
        return found
