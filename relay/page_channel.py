"""PageChannel: the data channel to the page, JSON events out and checked page messages in."""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Callable

from aiortc import RTCDataChannel

from .errors import PolicyViolation
from .events import ErrorCode, PageEvent, error_event
from .policy import (
    MESSAGE_BURST,
    MESSAGE_RATE_PER_S,
    TEXT_BURST,
    TEXT_RATE_PER_S,
    PageMessage,
    RateLimit,
    TextMessage,
    parse_page_message,
)

logger = logging.getLogger(__name__)

MAX_PENDING_EVENTS = 32  # kept until the channel opens; beyond that the oldest go
REFUSAL_NOTICE_S = 1.0  # a flood is told once a second that it is refused, not once a message


class PageChannel:
    """Sends events as JSON, keeping them (bounded) until the page's channel is open.

    Each message the page sends is checked by relay.policy: allowed ones go to `on_message`,
    anything else is answered with an `invalid_client_event` error. Messages beyond the rate
    limits (relay.policy) are dropped, counted in `refused_messages`, and answered with a
    `too_many_messages` error at most once a second.
    """

    def __init__(
        self,
        on_message: Callable[[PageMessage], None],
        max_pending: int = MAX_PENDING_EVENTS,
        clock: Callable[[], float] = time.monotonic,
        label: str = "PageChannel",
    ) -> None:
        self._on_message = on_message
        self._channel: RTCDataChannel | None = None
        self._pending: deque[PageEvent] = deque(maxlen=max_pending)
        self._clock = clock
        self._label = label
        self._messages = RateLimit(MESSAGE_RATE_PER_S, MESSAGE_BURST)
        self._texts = RateLimit(TEXT_RATE_PER_S, TEXT_BURST)
        self._last_notice = -float("inf")
        self.refused_messages = 0

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
        now = self._clock()
        if not self._messages.take(now):
            self._refuse(now, f"more than {MESSAGE_RATE_PER_S:g} messages a second")
            return
        try:
            parsed = parse_page_message(message)
        except PolicyViolation as exc:
            self.send(error_event(ErrorCode.INVALID_CLIENT_EVENT, str(exc)))
            return
        if isinstance(parsed, TextMessage) and not self._texts.take(now):
            self._refuse(now, f"more than {TEXT_RATE_PER_S:g} typed messages a second")
            return
        self._on_message(parsed)

    def _refuse(self, now: float, limit: str) -> None:
        if not self.refused_messages:
            logger.warning("%s refused page messages: %s", self._label, limit)
        self.refused_messages += 1
        if now - self._last_notice >= REFUSAL_NOTICE_S:
            self._last_notice = now
            self.send(error_event(ErrorCode.TOO_MANY_MESSAGES, limit))
