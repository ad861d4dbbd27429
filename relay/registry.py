"""SessionRegistry: the live sessions of one process, created from offers and closed on demand."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from typing import Protocol

from aiortc import RTCSessionDescription

from .backends import BackendConfig
from .errors import AtCapacity, SessionNotFound
from .memory import release_free_memory
from .session import Session, SessionOptions

RETRY_AFTER_S = 5
IDLE_TRIM_DELAY_S = 1.0  # after the last session ends, once its teardown has settled


class SessionObserver(Protocol):
    """Told of every session's start, turns and end (the web layer's metrics)."""

    def on_started(self, session: Session, link: str | None) -> None: ...

    def on_latency(self, session: Session, latency_ms: float) -> None: ...

    def on_ended(self, session: Session, link: str | None) -> None: ...


class SessionRegistry:
    """Owns every live Session; a session removes itself here when it ends, whatever the cause.

    A session counts from the moment its offer is accepted until its close has finished, so
    sessions still negotiating or tearing down count against `max_sessions` too.
    """

    def __init__(self, options: SessionOptions, observer: SessionObserver | None = None) -> None:
        self.options = options
        self._observer = observer
        self._sessions: dict[str, Session] = {}
        self._idle_trim: asyncio.TimerHandle | None = None
        self._emptied = asyncio.Event()  # set whenever the last live session has gone
        self.idle_trims = 0

    def __len__(self) -> int:
        return len(self._sessions)

    def __contains__(self, session_id: object) -> bool:
        return session_id in self._sessions

    def get(self, session_id: str) -> Session:
        try:
            return self._sessions[session_id]
        except KeyError:
            raise SessionNotFound(f"no live session {session_id!r}") from None

    async def create(
        self,
        offer: RTCSessionDescription,
        backend: BackendConfig,
        *,
        max_sessions: int | None = None,
        options: SessionOptions | None = None,
        on_closed: Callable[[Session], None] | None = None,
        link: str | None = None,
        session_id: str | None = None,
    ) -> tuple[Session, RTCSessionDescription]:
        """Start a session from `offer`; raises AtCapacity when `max_sessions` are live already.

        `options` replaces the registry's for this session; `on_closed` runs once it has ended;
        `link` (a demo link's slug) is for the observer; `session_id` is one chosen by the
        caller (a process that places sessions on workers), else a new random one.
        """
        # Check and insert with no await in between: concurrent offers cannot both take the
        # last place.
        if max_sessions is not None and len(self._sessions) >= max_sessions:
            raise AtCapacity(
                f"This server is busy: it is already running {len(self._sessions)} "
                f"conversations, its limit. Please try again in a few seconds.",
                retry_after_s=RETRY_AFTER_S,
            )
        session_id = session_id or secrets.token_urlsafe(12)
        if session_id in self._sessions:
            raise ValueError(f"session id {session_id!r} is taken")

        observer = self._observer

        def closed(session: Session) -> None:
            self._forget(session)
            if observer is not None:
                observer.on_ended(session, link)
            if on_closed is not None:
                on_closed(session)

        if self._idle_trim is not None:
            self._idle_trim.cancel()
            self._idle_trim = None
        session = Session(
            session_id,
            backend,
            options or self.options,
            on_closed=closed,
            on_latency=observer.on_latency if observer is not None else None,
        )
        self._sessions[session_id] = session
        if observer is not None:
            observer.on_started(session, link)
        answer = await session.answer(offer)
        return session, answer

    async def close(self, session_id: str, reason: str) -> None:
        await self.get(session_id).close(reason)

    async def close_all(self, reason: str) -> None:
        await asyncio.gather(*(s.close(reason) for s in list(self._sessions.values())))

    async def wait_empty(self, timeout_s: float) -> bool:
        """True once no session is live, False if `timeout_s` passed first (a drain)."""
        try:
            async with asyncio.timeout(timeout_s):
                while self._sessions:
                    self._emptied.clear()
                    await self._emptied.wait()
        except TimeoutError:
            return False
        return True

    def _forget(self, session: Session) -> None:
        self._sessions.pop(session.id, None)
        if not self._sessions:
            self._emptied.set()
            loop = asyncio.get_running_loop()
            self._idle_trim = loop.call_later(IDLE_TRIM_DELAY_S, self._trim_when_idle)

    def _trim_when_idle(self) -> None:
        self._idle_trim = None
        if not self._sessions:  # nothing live: a pause in the loop hurts no conversation
            release_free_memory()
            self.idle_trims += 1
