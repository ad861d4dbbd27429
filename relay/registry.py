"""SessionRegistry: the live sessions of one process, created from offers and closed on demand."""

from __future__ import annotations

import asyncio
import secrets

from aiortc import RTCSessionDescription

from .backends import BackendConfig
from .errors import SessionNotFound
from .session import Session, SessionOptions


class SessionRegistry:
    """Owns every live Session; a session removes itself here when it ends, whatever the cause."""

    def __init__(self, options: SessionOptions) -> None:
        self.options = options
        self._sessions: dict[str, Session] = {}

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
        self, offer: RTCSessionDescription, backend: BackendConfig
    ) -> tuple[Session, RTCSessionDescription]:
        session_id = secrets.token_urlsafe(12)
        session = Session(session_id, backend, self.options, on_closed=self._forget)
        self._sessions[session_id] = session
        answer = await session.answer(offer)
        return session, answer

    async def close(self, session_id: str, reason: str) -> None:
        await self.get(session_id).close(reason)

    async def close_all(self, reason: str) -> None:
        await asyncio.gather(*(s.close(reason) for s in list(self._sessions.values())))

    def _forget(self, session: Session) -> None:
        self._sessions.pop(session.id, None)
