"""Events the relay sends to the page over the data channel (JSON objects with a `type`).

The page words every message itself: errors and endings carry codes, and `detail` is raw text
(an exception, the backend's own message), never a sentence built here.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

PageEvent = dict[str, Any]
Role = Literal["user", "assistant"]


class State(StrEnum):
    CONNECTING = "connecting"
    LISTENING = "listening"
    USER_SPEAKING = "user_speaking"
    ASSISTANT_SPEAKING = "assistant_speaking"
    ENDED = "ended"


class ErrorCode(StrEnum):
    BACKEND_UNAVAILABLE = "backend_unavailable"  # detail: why the backend could not be reached
    BACKEND_ERROR = "backend_error"  # detail: the backend's raw message
    BACKEND_REJECTED_SESSION = "backend_rejected_session"  # detail: why it refused our session
    INVALID_CLIENT_EVENT = "invalid_client_event"  # detail: what is wrong with the page's message
    TOO_MANY_MESSAGES = "too_many_messages"  # detail: which limit the page's messages exceeded


class EndReason(StrEnum):
    HANGUP = "hangup"
    PEER_CLOSED = "peer_closed"
    ICE_FAILED = "ice_failed"
    BACKEND_CLOSED = "backend_closed"
    BACKEND_ERROR = "backend_error"
    MAX_DURATION = "max_duration"
    SERVER_SHUTDOWN = "server_shutdown"
    SERVER_DRAINING = "server_draining"  # a deploy: the page reconnects, to another instance
    INTERNAL_ERROR = "internal_error"
    BAD_OFFER = "bad_offer"  # negotiation failed: the page only sees the HTTP error
    CONNECT_TIMEOUT = "connect_timeout"  # the peer never connected (ICE + DTLS) in time


def state_event(state: State) -> PageEvent:
    return {"type": "state", "state": state.value}


def transcript_event(role: Role, item_id: str | None, text: str, final: bool) -> PageEvent:
    """The whole text of one turn so far; the page replaces what it shows for `item_id`."""
    return {"type": "transcript", "role": role, "item_id": item_id, "text": text, "final": final}


def thinking_event(item_id: str | None, text: str, final: bool) -> PageEvent:
    """A thinking model's reasoning so far: for the debug view only, never spoken or shown."""
    return {"type": "thinking", "item_id": item_id, "text": text, "final": final}


def tone_event(item_id: str | None, features: dict[str, Any]) -> PageEvent:
    """Pitch, loudness and speaking rate of one user turn (protocol.prosody)."""
    rounded = {k: round(v, 2) if isinstance(v, float) else v for k, v in features.items()}
    return {"type": "tone", "role": "user", "item_id": item_id, **rounded}


def latency_event(turn: int, ms: float) -> PageEvent:
    return {"type": "latency", "turn": turn, "ms": round(ms, 1)}


def interrupted_event(item_id: str | None, played_ms: int) -> PageEvent:
    return {"type": "interrupted", "item_id": item_id, "played_ms": played_ms}


def error_event(code: ErrorCode, detail: str) -> PageEvent:
    return {"type": "error", "code": code.value, "detail": detail}


def ended_event(reason: str) -> PageEvent:
    return {"type": "ended", "reason": str(reason)}
