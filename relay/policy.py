"""Which messages a page may send over the data channel, checked before anything reaches a model."""

from __future__ import annotations

import json
from dataclasses import dataclass

from protocol.events import ClientEvent

from .errors import PolicyViolation

MAX_MESSAGE_BYTES = 8 * 1024
MAX_TEXT_CHARS = 2_000
# Each typed message becomes a billed model response: a person types a few a minute, a script
# thousands a second. Every other message (interrupts, refused ones) has a looser bound.
TEXT_RATE_PER_S = 2.0
TEXT_BURST = 5
MESSAGE_RATE_PER_S = 20.0
MESSAGE_BURST = 40
TEXT = "text"
INTERRUPT = "interrupt"
TOOL_RESULT = "tool_result"  # the page's answer to a client tool call (relay.tools)
MAX_CALL_ID_CHARS = 128
MAX_TOOL_ERROR_CHARS = 1_000
# The page may also say `response.cancel`, as a realtime client would; it means interrupt.
ALLOWED_TYPES: tuple[str, ...] = (TEXT, INTERRUPT, ClientEvent.RESPONSE_CANCEL, TOOL_RESULT)


@dataclass(frozen=True)
class TextMessage:
    """The person typed instead of speaking."""

    text: str


@dataclass(frozen=True)
class Interrupt:
    """Stop the assistant now (button, or `response.cancel`)."""


@dataclass(frozen=True)
class ToolResult:
    """The page ran a client tool: `output` (as JSON text) or `error`, exactly one."""

    call_id: str
    output: str | None
    error: str | None


PageMessage = TextMessage | Interrupt | ToolResult


class RateLimit:
    """A token bucket: `burst` at once, then `rate_per_s` on average."""

    def __init__(self, rate_per_s: float, burst: int) -> None:
        self._rate = rate_per_s
        self._burst = float(burst)
        self._tokens = float(burst)
        self._updated: float | None = None

    def take(self, now: float) -> bool:
        """Whether one more may go at `now` (seconds, monotonic); takes a token if so."""
        if self._updated is not None:
            self._tokens = min(self._burst, self._tokens + (now - self._updated) * self._rate)
        self._updated = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


def parse_page_message(message: str | bytes) -> PageMessage:
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
    if kind == TEXT:
        text = event.get("text")
        if not isinstance(text, str) or not text.strip():
            raise PolicyViolation("a text message needs a non-empty 'text'")
        if len(text) > MAX_TEXT_CHARS:
            raise PolicyViolation(f"text is too long (limit {MAX_TEXT_CHARS} characters)")
        return TextMessage(text.strip())
    if kind in (INTERRUPT, ClientEvent.RESPONSE_CANCEL):
        return Interrupt()
    if kind == TOOL_RESULT:
        return _tool_result(event)
    allowed = ", ".join(ALLOWED_TYPES)
    raise PolicyViolation(f"event type {kind!r} is not allowed here (allowed: {allowed})")


def _tool_result(event: dict[str, object]) -> ToolResult:
    call_id = event.get("call_id")
    if not isinstance(call_id, str) or not 0 < len(call_id) <= MAX_CALL_ID_CHARS:
        raise PolicyViolation(f"a tool_result needs a 'call_id' (1–{MAX_CALL_ID_CHARS} chars)")
    if ("output" in event) == ("error" in event):
        raise PolicyViolation("a tool_result carries either 'output' or 'error'")
    if "error" in event:
        error = event["error"]
        if not isinstance(error, str) or len(error) > MAX_TOOL_ERROR_CHARS:
            raise PolicyViolation(f"'error' is text of at most {MAX_TOOL_ERROR_CHARS} characters")
        return ToolResult(call_id, None, error)
    output = event["output"]  # text goes to the model as it is, anything else as JSON
    return ToolResult(call_id, output if isinstance(output, str) else json.dumps(output), None)
