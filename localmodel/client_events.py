"""What the server makes of client events: ids, decoding, checks and the errors they raise."""

from __future__ import annotations

import binascii
import itertools
import json
import uuid
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import ErrorDetails

from protocol.events import Event

# OpenAI and StepFun allow at most 15 MiB of base64 per input_audio_buffer.append.
MAX_APPEND_BASE64_CHARS = 15 * 1024 * 1024
# Bigger messages and appends are decoded in a worker thread so that one huge event cannot stall
# every other session on the loop; typical 20-100 ms appends stay inline.
THREAD_DECODE_CHARS = 256 * 1024


class IdFactory:
    """Unique ids for one session: `<prefix>_<session token><counter>`."""

    def __init__(self) -> None:
        self._token = uuid.uuid4().hex[:12]
        self._counter = itertools.count(1)

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


def error_fields(error: ClientEventError, client_event_id: str | None) -> Event:
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


class ClientShape(BaseModel):
    """The shape of a client event or of an object in one; `validated` checks it.

    Fields this backend does not use (tracing, noise_reduction, metadata, ...) are accepted and
    ignored. Defaults are never validated: a field counts only if the client set it.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    def given(self, *names: str) -> dict[str, Any]:
        """The fields among `names` that the client set, by name."""
        return {name: getattr(self, name) for name in names if name in self.model_fields_set}


ShapeT = TypeVar("ShapeT", bound=ClientShape)
# Pydantic error types that the protocol reports with their own error code.
_ERROR_CODES = {
    "missing": "missing_required_parameter",
    "extra_forbidden": "unknown_parameter",
    "unknown_parameter": "unknown_parameter",
}
# Pydantic's words for the JSON a client sends (it would name our model classes).
_JSON_MESSAGES = {
    "model_type": "Input should be an object",
    "dict_type": "Input should be an object",
    "model_attributes_type": "Input should be an object",
}


def validated(shape: type[ShapeT], event: Event) -> ShapeT:
    """`event` as `shape`, or a ClientEventError naming the first wrong field by its path."""
    try:
        return shape.model_validate(event)
    except ValidationError as exc:
        raise _client_error(exc.errors()[0]) from None


def _client_error(error: ErrorDetails) -> ClientEventError:
    param = "".join(
        f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"]
    ).lstrip(".")
    code = _ERROR_CODES.get(error["type"], "invalid_value")
    if code == "missing_required_parameter":
        message = f"Missing required parameter '{param}'."
    elif code == "unknown_parameter":
        message = f"Unknown parameter '{param}': {error['msg']}."
    else:
        value = error.get("input")
        shown = isinstance(value, str | int | float | bool) or value is None
        got = f" (got {value!r:.60})" if shown else ""
        words = _JSON_MESSAGES.get(error["type"], error["msg"])
        message = f"Invalid value for '{param}': {words}{got}."
    return ClientEventError(code, message, param=param)


def encode(event: Event) -> str:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False)


def decode_event(message: str | bytes) -> Event:
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


def client_event_id(event: Event) -> str | None:
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
