"""Which events a page may send over the data channel, checked before anything reaches a model."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from .errors import PolicyViolation

MAX_MESSAGE_BYTES = 8 * 1024
MAX_TEXT_CHARS = 2_000


@dataclass(frozen=True)
class TextMessage:
    """The person typed instead of speaking."""

    text: str


@dataclass(frozen=True)
class Interrupt:
    """Stop the assistant now (button, or `response.cancel`)."""


ClientEvent = TextMessage | Interrupt
ALLOWED_TYPES: tuple[Literal["text", "interrupt", "response.cancel"], ...] = (
    "text",
    "interrupt",
    "response.cancel",
)


def parse_client_event(message: str | bytes) -> ClientEvent:
    """Parse one data channel message; raises PolicyViolation saying what is wrong."""
    if len(message) > MAX_MESSAGE_BYTES:
        raise PolicyViolation(f"message too large (limit {MAX_MESSAGE_BYTES} bytes)")
    try:
        event = json.loads(message)
    except ValueError:
        raise PolicyViolation("message is not JSON") from None
    if not isinstance(event, dict):
        raise PolicyViolation("message must be a JSON object")
    kind = event.get("type")
    if kind == "text":
        text = event.get("text")
        if not isinstance(text, str) or not text.strip():
            raise PolicyViolation("a text message needs a non-empty 'text'")
        if len(text) > MAX_TEXT_CHARS:
            raise PolicyViolation(f"text is too long (limit {MAX_TEXT_CHARS} characters)")
        return TextMessage(text.strip())
    if kind in ("interrupt", "response.cancel"):
        return Interrupt()
    allowed = ", ".join(ALLOWED_TYPES)
    raise PolicyViolation(f"event type {kind!r} is not allowed here (allowed: {allowed})")
