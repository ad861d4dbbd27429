"""Realtime protocol vocabulary: dialects, event names, ids, errors and client audio checks."""

from __future__ import annotations

import binascii
import enum
import itertools
import json
import uuid
from typing import Any

JsonObject = dict[str, Any]

# OpenAI and StepFun allow at most 15 MiB of base64 per input_audio_buffer.append.
MAX_APPEND_BASE64_CHARS = 15 * 1024 * 1024


class Dialect(enum.Enum):
    """Which event names a connection speaks: OpenAI beta / StepFun, or OpenAI GA."""

    BETA = "beta"
    GA = "ga"


# The one place where the two dialects differ in naming. Keyed by the beta/StepFun name;
# None means the dialect has no such event.
_NAMES: dict[str, tuple[str | None, str | None]] = {
    "conversation.item.created": ("conversation.item.created", "conversation.item.added"),
    "conversation.item.done": (None, "conversation.item.done"),
    "response.audio.delta": ("response.audio.delta", "response.output_audio.delta"),
    "response.audio.done": ("response.audio.done", "response.output_audio.done"),
    "response.audio_transcript.delta": (
        "response.audio_transcript.delta",
        "response.output_audio_transcript.delta",
    ),
    "response.audio_transcript.done": (
        "response.audio_transcript.done",
        "response.output_audio_transcript.done",
    ),
    "response.text.delta": ("response.text.delta", "response.output_text.delta"),
    "response.text.done": ("response.text.done", "response.output_text.done"),
    # Content part types of assistant output.
    "audio": ("audio", "output_audio"),
    "text": ("text", "output_text"),
}


def event_name(dialect: Dialect, beta_name: str) -> str | None:
    """The name `dialect` uses for the beta-named event or part type (None: not sent)."""
    names = _NAMES.get(beta_name)
    if names is None:
        return beta_name
    return names[0] if dialect is Dialect.BETA else names[1]


class IdFactory:
    """Unique ids for one session: `<prefix>_<session token><counter>`."""

    def __init__(self) -> None:
        self._token = uuid.uuid4().hex[:12]
        self._counter = itertools.count(1)

    @property
    def token(self) -> str:
        return self._token

    def new(self, prefix: str) -> str:
        return f"{prefix}_{self._token}{next(self._counter):x}"


class ClientEventError(Exception):
    """A client event the session rejects with an `error` event (the session stays usable)."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        param: str | None = None,
        error_type: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param
        self.error_type = error_type


def error_fields(error: ClientEventError, client_event_id: str | None) -> JsonObject:
    """The body of the `error` server event for a rejected client event."""
    return {
        "error": {
            "type": error.error_type,
            "code": error.code,
            "message": error.message,
            "param": error.param,
            "event_id": client_event_id,
        }
    }


def encode(event: JsonObject) -> str:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False)


def decode_event(message: str | bytes) -> JsonObject:
    """Parses one client message into an event object or raises ClientEventError."""
    try:
        event = json.loads(message)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ClientEventError(
            "invalid_json", f"The message is not valid JSON: {exc}", param=None
        ) from None
    if not isinstance(event, dict):
        raise ClientEventError("invalid_event", "A client event must be a JSON object.")
    if not isinstance(event.get("type"), str):
        raise ClientEventError(
            "missing_required_parameter", "The event has no string 'type'.", param="type"
        )
    return event


def client_event_id(event: JsonObject) -> str | None:
    value = event.get("event_id")
    return value if isinstance(value, str) else None


def decode_audio(audio: object, param: str = "audio") -> bytes:
    """Decodes base64 pcm16 audio from a client event, or raises ClientEventError."""
    if not isinstance(audio, str):
        raise ClientEventError(
            "missing_required_parameter", f"'{param}' must be a base64 string.", param=param
        )
    if len(audio) > MAX_APPEND_BASE64_CHARS:
        raise ClientEventError(
            "audio_too_large",
            f"'{param}' holds {len(audio)} base64 characters; the limit is "
            f"{MAX_APPEND_BASE64_CHARS} (15 MiB). Send smaller chunks.",
            param=param,
        )
    try:
        pcm = binascii.a2b_base64(audio, strict_mode=True)
    except (binascii.Error, ValueError):
        raise ClientEventError(
            "invalid_base64", f"'{param}' is not valid base64.", param=param
        ) from None
    if len(pcm) % 2:
        raise ClientEventError(
            "invalid_audio_length",
            f"'{param}' decodes to {len(pcm)} bytes; pcm16 audio needs an even byte count.",
            param=param,
        )
    return pcm
