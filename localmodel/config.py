"""Session configuration: defaults, partial updates in both dialects, and both output shapes."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from protocol.audio import PCM_RATE_HZ

from .protocol import ClientEventError, Dialect, JsonObject

# StepFun's energy_awakeness_threshold runs 0..5000; a LiveKit plugin maps threshold t to t * 5000.
_STEPFUN_ENERGY_SCALE = 5000
_MODALITIES = ({"text", "audio"}, {"text"})
_BETA_ONLY_FIELDS = (
    "modalities",
    "voice",
    "input_audio_format",
    "output_audio_format",
    "input_audio_transcription",
    "turn_detection",
    "temperature",
    "max_response_output_tokens",
)


@dataclasses.dataclass(frozen=True)
class TurnDetection:
    """Server VAD settings (`turn_detection`)."""

    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500
    create_response: bool = True
    interrupt_response: bool = True

    def to_json(self) -> JsonObject:
        return {
            "type": "server_vad",
            "threshold": self.threshold,
            "prefix_padding_ms": self.prefix_padding_ms,
            "silence_duration_ms": self.silence_duration_ms,
            "create_response": self.create_response,
            "interrupt_response": self.interrupt_response,
        }


@dataclasses.dataclass(frozen=True)
class SessionConfig:
    """The effective session; audio is always pcm16, 24 kHz, mono, little-endian."""

    id: str
    model: str
    modalities: tuple[str, ...] = ("text", "audio")
    instructions: str = ""
    voice: str = "local"
    turn_detection: TurnDetection | None = TurnDetection()
    input_audio_transcription: JsonObject | None = None
    tools: tuple[JsonObject, ...] = ()
    tool_choice: str = "auto"
    temperature: float = 0.8
    max_response_output_tokens: int | str = "inf"

    def to_json(self, dialect: Dialect) -> JsonObject:
        if dialect is Dialect.GA:
            return self._to_ga()
        return {
            "id": self.id,
            "object": "realtime.session",
            "model": self.model,
            "modalities": list(self.modalities),
            "instructions": self.instructions,
            "voice": self.voice,
            "input_audio_format": "pcm16",
            "output_audio_format": "pcm16",
            "input_audio_transcription": self.input_audio_transcription,
            "turn_detection": self._turn_detection_json(),
            "tools": list(self.tools),
            "tool_choice": self.tool_choice,
            "temperature": self.temperature,
            "max_response_output_tokens": self.max_response_output_tokens,
        }

    def _turn_detection_json(self) -> JsonObject | None:
        return None if self.turn_detection is None else self.turn_detection.to_json()

    def _to_ga(self) -> JsonObject:
        pcm = {"type": "audio/pcm", "rate": PCM_RATE_HZ}
        return {
            "type": "realtime",
            "object": "realtime.session",
            "id": self.id,
            "model": self.model,
            "output_modalities": ["audio"] if "audio" in self.modalities else ["text"],
            "instructions": self.instructions,
            "audio": {
                "input": {
                    "format": pcm,
                    "transcription": self.input_audio_transcription,
                    "turn_detection": self._turn_detection_json(),
                    "noise_reduction": None,
                },
                "output": {"format": pcm, "voice": self.voice, "speed": 1.0},
            },
            "tools": list(self.tools),
            "tool_choice": self.tool_choice,
            "max_output_tokens": self.max_response_output_tokens,
        }


def is_ga_session(session: JsonObject) -> bool:
    """True when a session.update body uses the OpenAI GA (nested) shape."""
    return session.get("type") == "realtime" or isinstance(session.get("audio"), dict)


def apply_update(
    config: SessionConfig,
    session: JsonObject,
    *,
    ga: bool,
    turn_defaults: TurnDetection | None = None,
) -> SessionConfig:
    """Merges a partial session.update body; raises ClientEventError without changing anything.

    `turn_defaults` fills the fields an update leaves out when it turns server VAD back on.
    """
    changes: dict[str, Any] = {}
    if "instructions" in session:
        changes["instructions"] = _string(session["instructions"], "session.instructions")
    if "tools" in session:
        changes["tools"] = tuple(_list_of_objects(session["tools"], "session.tools"))
    if "tool_choice" in session:
        changes["tool_choice"] = _string(session["tool_choice"], "session.tool_choice")
    turn = config.turn_detection or turn_defaults or TurnDetection()
    if ga:
        _apply_ga(config, session, changes, turn)
    else:
        _apply_beta(config, session, changes, turn)
    return dataclasses.replace(config, **changes)


def _apply_beta(
    config: SessionConfig, session: JsonObject, changes: dict[str, Any], turn: TurnDetection
) -> None:
    if "modalities" in session:
        changes["modalities"] = _modalities(session["modalities"], "session.modalities")
    if "voice" in session:
        changes["voice"] = _string(session["voice"], "session.voice")
    for field in ("input_audio_format", "output_audio_format"):
        if field in session and session[field] != "pcm16":
            raise _unsupported_format(f"session.{field}", session[field])
    if "input_audio_transcription" in session:
        changes["input_audio_transcription"] = _optional_object(
            session["input_audio_transcription"], "session.input_audio_transcription"
        )
    if "turn_detection" in session:
        changes["turn_detection"] = _turn_detection(
            turn, session["turn_detection"], "session.turn_detection"
        )
    if "temperature" in session:
        changes["temperature"] = _number(session["temperature"], "session.temperature", 0.0, 2.0)
    if "max_response_output_tokens" in session:
        changes["max_response_output_tokens"] = _max_tokens(
            session["max_response_output_tokens"], "session.max_response_output_tokens"
        )


def _apply_ga(
    config: SessionConfig, session: JsonObject, changes: dict[str, Any], turn: TurnDetection
) -> None:
    if "type" in session and session["type"] != "realtime":
        raise ClientEventError(
            "invalid_value", "session.type must be 'realtime'.", param="session.type"
        )
    # Like OpenAI GA, refuse flat beta fields rather than silently ignoring them.
    for field in _BETA_ONLY_FIELDS:
        if field in session:
            raise ClientEventError(
                "unknown_parameter",
                f"Unknown parameter 'session.{field}' in a GA session (see session.audio).",
                param=f"session.{field}",
            )
    if "output_modalities" in session:
        modalities = session["output_modalities"]
        if modalities == ["audio"]:
            changes["modalities"] = ("text", "audio")
        elif modalities == ["text"]:
            changes["modalities"] = ("text",)
        else:
            raise ClientEventError(
                "invalid_value",
                "output_modalities must be ['audio'] or ['text'].",
                param="session.output_modalities",
            )
    if "max_output_tokens" in session:
        changes["max_response_output_tokens"] = _max_tokens(
            session["max_output_tokens"], "session.max_output_tokens"
        )
    audio = _optional_object(session.get("audio"), "session.audio") or {}
    audio_in = _optional_object(audio.get("input"), "session.audio.input") or {}
    audio_out = _optional_object(audio.get("output"), "session.audio.output") or {}
    for param, fmt in (
        ("session.audio.input.format", audio_in.get("format")),
        ("session.audio.output.format", audio_out.get("format")),
    ):
        if fmt is not None:
            _check_ga_format(fmt, param)
    if "turn_detection" in audio_in:
        changes["turn_detection"] = _turn_detection(
            turn,
            audio_in["turn_detection"],
            "session.audio.input.turn_detection",
        )
    if "transcription" in audio_in:
        changes["input_audio_transcription"] = _optional_object(
            audio_in["transcription"], "session.audio.input.transcription"
        )
    if "voice" in audio_out:
        voice = audio_out["voice"]
        if isinstance(voice, dict):
            voice = voice.get("id")
        changes["voice"] = _string(voice, "session.audio.output.voice")


def _check_ga_format(fmt: object, param: str) -> None:
    if not isinstance(fmt, dict) or fmt.get("type") != "audio/pcm":
        kind = fmt.get("type") if isinstance(fmt, dict) else fmt
        raise _unsupported_format(f"{param}.type", kind)
    rate = fmt.get("rate", PCM_RATE_HZ)
    if rate != PCM_RATE_HZ:
        raise ClientEventError(
            "invalid_value",
            f"Unsupported sample rate {rate!r}: the local backend takes {PCM_RATE_HZ} Hz only.",
            param=f"{param}.rate",
        )


def _unsupported_format(param: str, value: object) -> ClientEventError:
    return ClientEventError(
        "invalid_value",
        f"Unsupported audio format {value!r}: the local backend takes pcm16 "
        f"(audio/pcm, {PCM_RATE_HZ} Hz, mono) only.",
        param=param,
    )


def _turn_detection(current: TurnDetection, value: object, param: str) -> TurnDetection | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ClientEventError("invalid_value", f"{param} must be an object or null.", param=param)
    kind = value.get("type", "server_vad")
    if kind != "server_vad":
        raise ClientEventError(
            "invalid_value",
            f"Unsupported turn detection {kind!r}: the local backend offers 'server_vad' only.",
            param=f"{param}.type",
        )
    changes: dict[str, Any] = {}
    if "threshold" in value:
        changes["threshold"] = _number(value["threshold"], f"{param}.threshold", 0.0, 1.0)
    elif "energy_awakeness_threshold" in value:
        energy = _number(
            value["energy_awakeness_threshold"],
            f"{param}.energy_awakeness_threshold",
            0.0,
            _STEPFUN_ENERGY_SCALE,
        )
        changes["threshold"] = energy / _STEPFUN_ENERGY_SCALE
    for field in ("prefix_padding_ms", "silence_duration_ms"):
        if field in value:
            changes[field] = int(_number(value[field], f"{param}.{field}", 0, 10_000))
    for field in ("create_response", "interrupt_response"):
        if field in value:
            if not isinstance(value[field], bool):
                raise ClientEventError(
                    "invalid_value", f"{param}.{field} must be a boolean.", param=f"{param}.{field}"
                )
            changes[field] = value[field]
    return dataclasses.replace(current, **changes)


def _modalities(value: object, param: str) -> tuple[str, ...]:
    if isinstance(value, list) and set(value) in _MODALITIES and len(set(value)) == len(value):
        return ("text", "audio") if "audio" in value else ("text",)
    raise ClientEventError(
        "invalid_value", f"{param} must be ['text', 'audio'] or ['text'].", param=param
    )


def _max_tokens(value: object, param: str) -> int | str:
    if value == "inf":
        return "inf"
    return int(_number(value, param, 1, 1_000_000))


def _number(value: object, param: str, low: float, high: float) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not low <= value <= high
    ):
        raise ClientEventError(
            "invalid_value", f"{param} must be a number from {low:g} to {high:g}.", param=param
        )
    return float(value)


def _string(value: object, param: str) -> str:
    if not isinstance(value, str):
        raise ClientEventError("invalid_value", f"{param} must be a string.", param=param)
    return value


def _optional_object(value: object, param: str) -> JsonObject | None:
    if value is None or isinstance(value, dict):
        return value
    raise ClientEventError("invalid_value", f"{param} must be an object or null.", param=param)


def _list_of_objects(value: object, param: str) -> list[JsonObject]:
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise ClientEventError("invalid_value", f"{param} must be a list of objects.", param=param)
    return value
