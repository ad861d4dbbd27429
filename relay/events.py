"""Events the relay sends to the page over the data channel (JSON objects with a `type`)."""

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


def state_event(state: State) -> PageEvent:
    return {"type": "state", "state": state.value}


def transcript_event(role: Role, item_id: str | None, text: str, final: bool) -> PageEvent:
    """The whole text of one turn so far; the page replaces what it shows for `item_id`."""
    return {"type": "transcript", "role": role, "item_id": item_id, "text": text, "final": final}


def tone_event(item_id: str | None, features: dict[str, Any]) -> PageEvent:
    """Pitch, loudness and speaking rate of one user turn (protocol.prosody)."""
    rounded = {k: round(v, 2) if isinstance(v, float) else v for k, v in features.items()}
    return {"type": "tone", "role": "user", "item_id": item_id, **rounded}


def latency_event(turn: int, ms: float) -> PageEvent:
    return {"type": "latency", "turn": turn, "ms": round(ms, 1)}


def interrupted_event(item_id: str | None, played_ms: int) -> PageEvent:
    return {"type": "interrupted", "item_id": item_id, "played_ms": played_ms}


def error_event(code: str, message: str) -> PageEvent:
    return {"type": "error", "code": code, "message": message}


def ended_event(reason: str) -> PageEvent:
    return {"type": "ended", "reason": reason}
