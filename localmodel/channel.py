"""The transport a local realtime session talks over."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol


class MessageChannel(Protocol):
    """A message-oriented duplex channel, e.g. a `websockets` server connection."""

    async def send(self, message: str) -> None: ...

    def __aiter__(self) -> AsyncIterator[str | bytes]:
        """Yields inbound messages; iteration ends when the peer closes."""
        ...
