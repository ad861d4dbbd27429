"""Serialised, awaited sends of server events on one channel."""

from __future__ import annotations

import asyncio
import logging

from protocol.events import Event, Naming, ServerEvent, spelled

from .channel import MessageChannel
from .client_events import IdFactory, encode

logger = logging.getLogger(__name__)


class ChannelClosed(Exception):
    """The peer is gone: a send failed, so the session ends."""


class Outbox:
    """Sends events in call order, one at a time; each send is awaited (backpressure)."""

    def __init__(self, channel: MessageChannel, ids: IdFactory) -> None:
        self._channel = channel
        self._ids = ids
        self._lock = asyncio.Lock()
        self._closed = False
        self.naming = Naming.BETA

    def new_event_id(self) -> str:
        return self._ids.new("event")

    async def emit(self, event: ServerEvent, fields: Event, *, shield: bool = False) -> None:
        """Sends one event as the connection's naming spells it (skipped if it has none).

        With `shield`, cancelling the caller never cuts a send short: the message still goes
        out, in order, and the caller sees CancelledError afterwards.
        """
        name = spelled(self.naming, event)
        if name is None:
            return
        await self.send_text(
            encode({"type": name, "event_id": self.new_event_id(), **fields}), shield
        )

    async def send_text(self, text: str, shield: bool = False) -> None:
        sent = await (asyncio.shield(self._send(text)) if shield else self._send(text))
        if not sent:
            raise ChannelClosed

    async def _send(self, text: str) -> bool:
        if self._closed:
            return False
        async with self._lock:
            try:
                await self._channel.send(text)
            except Exception as exc:  # any transport's "connection closed"
                logger.debug("Outbox: send failed (%s), closing", type(exc).__name__)
                self._closed = True
                return False
        return True
