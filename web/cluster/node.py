"""This instance's part in a cluster: its sessions in the directory, its leases renewed, and
hang-ups other instances pass to it.

Without Redis it serves the same questions from this process alone (one machine), so routes
and the CLI ask a `ClusterNode` either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Protocol

from fastapi import Request
from redis.asyncio import Redis
from redis.exceptions import RedisError

from relay import Session, SessionNotFound
from relay.registry import SessionObserver

from ..settings import Settings
from .directory import ClusterView, InstanceLoad, RedisDirectory, SessionEntry
from .keys import control_channel
from .leases import RedisLeases

logger = logging.getLogger(__name__)

HANGUP_WAIT_S = 5.0  # how long a DELETE waits for the owner to end its session
HANGUP_POLL_S = 0.05
LISTEN_POLL_S = 1.0
RECONNECT_S = 1.0
PUBLISH_ATTEMPTS = 5  # over 2 s: longer than the owner takes to subscribe again
MAX_SESSION_ID = 64  # ours are 16 characters; anything longer names no session
MAX_CONTROL_BYTES = 1024


class LocalSessions(Protocol):
    """What the node needs of the process's session registry."""

    def __len__(self) -> int: ...

    def __contains__(self, session_id: object) -> bool: ...

    async def close(self, session_id: str, reason: str) -> None: ...


class Observers:
    """Several session observers behind the registry's one (metrics, the cluster node)."""

    def __init__(self, *observers: SessionObserver) -> None:
        self._observers = observers

    def on_started(self, session: Session, link: str | None) -> None:
        for observer in self._observers:
            observer.on_started(session, link)

    def on_latency(self, session: Session, latency_ms: float) -> None:
        for observer in self._observers:
            observer.on_latency(session, latency_ms)

    def on_ended(self, session: Session, link: str | None) -> None:
        for observer in self._observers:
            observer.on_ended(session, link)


def default_instance_id(settings: Settings) -> str:
    return settings.instance_id or f"{socket.gethostname()}:{settings.port}"


class ClusterNode:
    """A session observer that keeps this instance's entries in the directory (with Redis)."""

    def __init__(
        self, settings: Settings, client: Redis | None, draining: Callable[[], bool]
    ) -> None:
        self.instance_id = default_instance_id(settings)
        self._max_sessions = settings.resolved_max_sessions
        self._ttl_ms = int(settings.lease_ttl_s * 1000)
        self._interval_s = settings.lease_ttl_s / 3
        self._draining = draining
        self._redis = client
        self.directory = RedisDirectory(client) if client is not None else None
        self.leases = RedisLeases(client, settings.lease_ttl_s) if client is not None else None
        self._sessions: LocalSessions | None = None
        self._local: dict[str, SessionEntry] = {}
        self._ended: set[str] = set()  # still to be removed from the directory
        self._changed = asyncio.Event()
        self._hangups: set[asyncio.Task[None]] = set()

    def attach(self, sessions: LocalSessions) -> None:
        self._sessions = sessions

    # -- the registry's observer, and the same from the facts alone (worker processes) ------

    def on_started(self, session: Session, link: str | None) -> None:
        self.session_started(session.id, session.backend.dialect, session.backend.model, link)

    def on_latency(self, session: Session, latency_ms: float) -> None:
        pass

    def on_ended(self, session: Session, link: str | None) -> None:
        self.session_ended(session.id)

    def session_started(self, session_id: str, backend: str, model: str, link: str | None) -> None:
        self._local[session_id] = SessionEntry(
            id=session_id,
            instance=self.instance_id,
            link=link,
            backend=backend,
            model=model,
            started_at=datetime.now(UTC),
        )
        self._changed.set()  # the heartbeat writes it now, not at its next beat

    def session_ended(self, session_id: str) -> None:
        self._local.pop(session_id, None)
        if self.directory is not None:
            self._ended.add(session_id)
            self._changed.set()

    # -- questions about the cluster -------------------------------------------------------

    def load(self) -> InstanceLoad:
        active = len(self._sessions) if self._sessions is not None else len(self._local)
        return InstanceLoad(
            id=self.instance_id,
            host=socket.gethostname(),
            pid=os.getpid(),
            active=active,
            max_sessions=self._max_sessions,
            draining=self._draining(),
        )

    async def view(self) -> ClusterView:
        """Every live session and instance: the cluster's with Redis, else this process's."""
        if self.directory is None:
            sessions = sorted(self._local.values(), key=lambda e: (e.started_at, e.id))
            return ClusterView(instances=[self.load()], sessions=sessions)
        return await self.directory.view()

    async def hang_up(self, session_id: str) -> None:
        """Ends the session wherever it runs; SessionNotFound if no instance runs it."""
        sessions = self._sessions
        if sessions is not None and session_id in sessions:
            await sessions.close(session_id, "hangup")
            return
        if self.directory is None or self._redis is None or len(session_id) > MAX_SESSION_ID:
            raise SessionNotFound(f"no live session {session_id!r}")
        entry = await self.directory.entry(session_id)
        if entry is None:
            raise SessionNotFound(f"no live session {session_id!r}")
        if entry.instance == self.instance_id or not await self._publish_hang_up(entry):
            # Its instance is gone (or restarted without it): the entry is stale.
            await self.directory.forget([session_id])
            raise SessionNotFound(f"no live session {session_id!r}")
        # The owner removes the entry once the session has ended: wait for it, briefly.
        for _ in range(int(HANGUP_WAIT_S / HANGUP_POLL_S)):
            if await self.directory.entry(session_id) is None:
                return
            await asyncio.sleep(HANGUP_POLL_S)

    async def _publish_hang_up(self, entry: SessionEntry) -> bool:
        """Whether the owner heard it; a live owner may be resubscribing after a Redis outage."""
        assert self._redis is not None and self.directory is not None
        message = json.dumps({"hang_up": entry.id})
        for _ in range(PUBLISH_ATTEMPTS):
            if await self._redis.publish(control_channel(entry.instance), message):
                return True
            if not await self.directory.instance_live(entry.instance):
                return False
            await asyncio.sleep(RECONNECT_S / 2)
        return False

    # -- running ---------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Heartbeat and hang-up listener while the block runs; leaves the directory after."""
        if self.directory is None:
            yield
            return
        tasks = [
            asyncio.create_task(self._heartbeat(), name="cluster-heartbeat"),
            asyncio.create_task(self._listen(), name="cluster-control"),
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, *self._hangups, return_exceptions=True)
            await self._withdraw()

    async def _heartbeat(self) -> None:
        assert self.directory is not None
        failing = False
        while True:
            self._changed.clear()
            wait_s = self._interval_s
            try:
                await self._sync()
                if failing:
                    logger.info("shared state (Redis) reachable again")
                failing = False
            except RedisError as exc:
                if not failing:
                    logger.warning("shared state (Redis) unreachable, calls go on: %s", exc)
                failing = True
            except Exception:  # never let the leases lapse for a bug: log it and beat on
                logger.exception("cluster heartbeat failed")
                failing = True
            if not failing:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), wait_s)
            else:
                await asyncio.sleep(wait_s)  # not sooner, whatever changes meanwhile

    async def _sync(self) -> None:
        assert self.directory is not None
        ended = list(self._ended)
        await self.directory.publish(self.load(), list(self._local.values()), ended, self._ttl_ms)
        self._ended.difference_update(ended)
        if self.leases is not None:
            await self.leases.renew()

    async def _listen(self) -> None:
        assert self._redis is not None
        channel = control_channel(self.instance_id)
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(channel)
                    while True:
                        message = await pubsub.get_message(
                            ignore_subscribe_messages=True, timeout=LISTEN_POLL_S
                        )
                        if message is not None and message.get("type") == "message":
                            self._on_control(message["data"])
            except RedisError:
                pass  # the heartbeat logs the outage
            except Exception:  # hang-ups from other instances must keep arriving
                logger.exception("cluster control channel failed; subscribing again")
            await asyncio.sleep(RECONNECT_S)

    def _on_control(self, data: bytes) -> None:
        try:
            session_id = json.loads(data[:MAX_CONTROL_BYTES])["hang_up"]
        except (ValueError, KeyError, TypeError):
            logger.warning("ignored a malformed control message")
            return
        if not isinstance(session_id, str):
            return
        task = asyncio.create_task(self._hang_up_here(session_id), name="cluster-hangup")
        self._hangups.add(task)
        task.add_done_callback(self._hangups.discard)

    async def _hang_up_here(self, session_id: str) -> None:
        sessions = self._sessions
        if sessions is not None and session_id in sessions:
            await sessions.close(session_id, "hangup")
        elif self.directory is not None:
            with contextlib.suppress(RedisError):
                await self.directory.forget([session_id])  # not ours any more

    async def _withdraw(self) -> None:
        assert self.directory is not None
        listed = [*self._local, *self._ended]
        try:
            async with asyncio.timeout(5):
                await self.directory.withdraw(self.instance_id, listed)
        except (RedisError, TimeoutError) as exc:
            logger.warning(
                "could not leave the directory (%s): its entries expire by themselves", exc
            )
        if self.leases is not None:
            await self.leases.close()


def cluster_of(request: Request) -> ClusterNode:
    node = request.app.state.cluster
    assert isinstance(node, ClusterNode)
    return node
