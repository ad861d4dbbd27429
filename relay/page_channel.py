"""PageChannel: the data channel to the page, JSON events out and checked page messages in."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable

from aiortc import RTCDataChannel

from .errors import PolicyViolation
from .events import ErrorCode, PageEvent, error_event
from .policy import PageMessage, parse_page_message

MAX_PENDING_EVENTS = 32  # kept until the channel opens; beyond that the oldest go


class PageChannel:
    """Sends events as JSON, keeping them (bounded) until the page's channel is open.

    Each message the page sends is checked by relay.policy: allowed ones go to `on_message`,
    anything else is answered with an `invalid_client_event` error.
    """

    def __init__(
        self,
        on_message: Callable[[PageMessage], None],
        max_pending: int = MAX_PENDING_EVENTS,
    ) -> None:
        self._on_message = on_message
        self._channel: RTCDataChannel | None = None
        self._pending: deque[PageEvent] = deque(maxlen=max_pending)

    def attach(self, channel: RTCDataChannel) -> None:
        """Use the channel the page opened; what was kept goes out once it is open."""
        self._channel = channel
        channel.on("message", self._on_channel_message)
        channel.on("open", self._flush)
        self._flush()

    def send(self, event: PageEvent) -> None:
        channel = self._channel
        if channel is not None and channel.readyState == "open":
            channel.send(json.dumps(event))
        else:
            self._pending.append(event)

    def _flush(self) -> None:
        channel = self._channel
        while channel is not None and channel.readyState == "open" and self._pending:
            channel.send(json.dumps(self._pending.popleft()))

    def _on_channel_message(self, message: str | bytes) -> None:
        try:
            parsed = parse_page_message(message)
        except PolicyViolation as exc:
            self.send(error_event(ErrorCode.INVALID_CLIENT_EVENT, str(exc)))
            return
        self._on_message(parsed)
