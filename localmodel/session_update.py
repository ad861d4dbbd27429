"""session.update in both shapes, beta/StepFun (flat) and OpenAI GA (nested under `audio`).

An update is partial: the fields the client set replace the current ones, the rest stay. The
local backend takes pcm16 24 kHz mono and server VAD only, so other formats or turn detection
types are refused rather than silently ignored.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    Strict,
    StrictBool,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)
from pydantic_core import PydanticCustomError

from protocol.events import Event, Naming

from .client_events import ClientShape, validated
from .config import SessionConfig, TurnDetection, response_modalities

# StepFun's energy_awakeness_threshold runs 0..5000; a LiveKit plugin maps threshold t to t * 5000.
STEPFUN_ENERGY_SCALE = 5000

# JSON numbers; a boolean is not one (Strict), nor are NaN and infinities.
Fraction = Annotated[float, Strict(), Field(ge=0, le=1, allow_inf_nan=False)]
EnergyThreshold = Annotated[float, Strict(), Field(ge=0, le=STEPFUN_ENERGY_SCALE)]
Milliseconds = Annotated[float, Strict(), Field(ge=0, le=10_000)]
Temperature = Annotated[float, Strict(), Field(ge=0, le=2, allow_inf_nan=False)]


def _tokens_error(value: object, handler: ValidatorFunctionWrapHandler) -> object:
    # One message for the union instead of one error per member.
    try:
        return handler(value)
    except ValueError:
        raise PydanticCustomError(
            "max_tokens", "Input should be 'inf' or a number from 1 to 1000000"
        ) from None


MaxTokens = Annotated[
    Literal["inf"] | Annotated[float, Strict(), Field(ge=1, le=1_000_000)],
    WrapValidator(_tokens_error),
]


def _text_and_maybe_audio(value: list[str]) -> list[str]:
    if sorted(value) not in (["audio", "text"], ["text"]):
        raise PydanticCustomError("modalities", "Input should be ['text', 'audio'] or ['text']")
    return value


BetaModalities = Annotated[list[Literal["text", "audio"]], AfterValidator(_text_and_maybe_audio)]
GaModalities = Annotated[list[Literal["audio", "text"]], Field(min_length=1, max_length=1)]


def _refuse_beta_field(value: object) -> object:
    # Like OpenAI GA: a flat beta field in a GA session is an error, not silently ignored.
    raise PydanticCustomError(
        "unknown_parameter", "a beta field; a GA session sets audio options under session.audio"
    )


BetaOnly = Annotated[object, BeforeValidator(_refuse_beta_field)]


def _flat_function(value: object) -> object:
    # StepFun nests a function as {"type": "function", "function": {...}}; OpenAI is flat.
    if isinstance(value, dict) and isinstance(value.get("function"), dict):
        return {"type": value.get("type"), **value["function"]}
    return value


class ToolDefinition(ClientShape):
    """A function tool, flat (OpenAI) or nested (StepFun); built-in tools are not served here."""

    type: Literal["function"]
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    description: Annotated[str, Field(max_length=4000)] = ""
    parameters: dict[str, Any] = {"type": "object", "properties": {}}

    def to_json(self) -> Event:
        return {
            "type": "function",
            "name": self.name,
            "description": self.description,
            "parameters": self.parameters,
        }


Tools = Annotated[
    list[Annotated[ToolDefinition, BeforeValidator(_flat_function)]], Field(max_length=128)
]


def _voice_id(value: object) -> object:
    # GA also names a voice as {"id": ...}.
    return value.get("id") if isinstance(value, dict) else value


class TurnDetectionUpdate(ClientShape):
    """`turn_detection` (beta) or `audio.input.turn_detection` (GA): server VAD settings."""

    type: Literal["server_vad"] = "server_vad"
    threshold: Fraction = 0.5
    energy_awakeness_threshold: EnergyThreshold = 0  # StepFun's name for the threshold
    prefix_padding_ms: Milliseconds = 0
    silence_duration_ms: Milliseconds = 0
    create_response: StrictBool = True
    interrupt_response: StrictBool = True

    def applied_to(self, current: TurnDetection) -> TurnDetection:
        changes = self.given("threshold", "create_response", "interrupt_response")
        if "threshold" not in changes and "energy_awakeness_threshold" in self.model_fields_set:
            changes["threshold"] = self.energy_awakeness_threshold / STEPFUN_ENERGY_SCALE
        for name, ms in self.given("prefix_padding_ms", "silence_duration_ms").items():
            changes[name] = int(ms)
        return dataclasses.replace(current, **changes)


class _Session(ClientShape):
    """The fields both shapes share."""

    instructions: str = ""
    tools: Tools = []
    tool_choice: str = "auto"

    def changes(self, turn: TurnDetection) -> dict[str, Any]:
        """The SessionConfig fields this update sets; `turn` is what turn_detection updates."""
        changes = self.given("instructions", "tool_choice")
        if "tools" in self.model_fields_set:
            changes["tools"] = tuple(tool.to_json() for tool in self.tools)
        return changes


def _turn_detection(
    update: TurnDetectionUpdate | None, turn: TurnDetection
) -> TurnDetection | None:
    return None if update is None else update.applied_to(turn)


class BetaSession(_Session):
    """The flat session of OpenAI beta and StepFun."""

    modalities: BetaModalities = ["text", "audio"]
    voice: str = ""
    input_audio_format: Literal["pcm16"] = "pcm16"
    output_audio_format: Literal["pcm16"] = "pcm16"
    input_audio_transcription: dict[str, Any] | None = None
    turn_detection: TurnDetectionUpdate | None = None
    temperature: Temperature = 0.8
    max_response_output_tokens: MaxTokens = "inf"

    def changes(self, turn: TurnDetection) -> dict[str, Any]:
        changes = super().changes(turn)
        changes.update(self.given("voice", "input_audio_transcription", "temperature"))
        given = self.model_fields_set
        if "modalities" in given:
            changes["modalities"] = response_modalities(self.modalities)
        if "turn_detection" in given:
            changes["turn_detection"] = _turn_detection(self.turn_detection, turn)
        if "max_response_output_tokens" in given:
            changes["max_response_output_tokens"] = _tokens(self.max_response_output_tokens)
        return changes


class GaFormat(ClientShape):
    """A GA audio format object; only pcm16 24 kHz is served."""

    type: Literal["audio/pcm"]
    rate: Literal[24000] = 24000  # protocol.audio.PCM_RATE_HZ


class GaInput(ClientShape):
    """`session.audio.input`."""

    format: GaFormat | None = None
    transcription: dict[str, Any] | None = None
    turn_detection: TurnDetectionUpdate | None = None


class GaOutput(ClientShape):
    """`session.audio.output`."""

    format: GaFormat | None = None
    voice: Annotated[str, BeforeValidator(_voice_id)] = ""


class GaAudio(ClientShape):
    """`session.audio`."""

    input: GaInput | None = None
    output: GaOutput | None = None


class GaSession(_Session):
    """The nested session of OpenAI GA; the flat beta fields are refused."""

    type: Literal["realtime"] = "realtime"
    output_modalities: GaModalities = ["audio"]
    max_output_tokens: MaxTokens = "inf"
    audio: GaAudio | None = None
    modalities: BetaOnly = None
    voice: BetaOnly = None
    input_audio_format: BetaOnly = None
    output_audio_format: BetaOnly = None
    input_audio_transcription: BetaOnly = None
    turn_detection: BetaOnly = None
    temperature: BetaOnly = None
    max_response_output_tokens: BetaOnly = None

    def changes(self, turn: TurnDetection) -> dict[str, Any]:
        changes = super().changes(turn)
        if "output_modalities" in self.model_fields_set:
            changes["modalities"] = response_modalities(self.output_modalities)
        if "max_output_tokens" in self.model_fields_set:
            changes["max_response_output_tokens"] = _tokens(self.max_output_tokens)
        audio_in = self.audio.input if self.audio else None
        audio_out = self.audio.output if self.audio else None
        if audio_in is not None:
            if "turn_detection" in audio_in.model_fields_set:
                changes["turn_detection"] = _turn_detection(audio_in.turn_detection, turn)
            if "transcription" in audio_in.model_fields_set:
                changes["input_audio_transcription"] = audio_in.transcription
        if audio_out is not None and "voice" in audio_out.model_fields_set:
            changes["voice"] = audio_out.voice
        return changes


class _BetaUpdate(ClientShape):
    session: BetaSession


class _GaUpdate(ClientShape):
    session: GaSession


def _tokens(value: float | str) -> int | str:
    return value if isinstance(value, str) else int(value)


def is_ga_session(session: Event) -> bool:
    """True when a session.update body uses the OpenAI GA (nested) shape."""
    return session.get("type") == "realtime" or isinstance(session.get("audio"), dict)


def parse_update(event: Event, naming: Naming) -> BetaSession | GaSession:
    """The session.update's body in the shape the connection (or the body itself) speaks."""
    body = event.get("session")
    ga = naming is Naming.GA or (isinstance(body, dict) and is_ga_session(body))
    return validated(_GaUpdate, event).session if ga else validated(_BetaUpdate, event).session


def apply_update(
    config: SessionConfig,
    update: BetaSession | GaSession,
    turn_defaults: TurnDetection | None = None,
) -> SessionConfig:
    """`config` with the update's changes; `turn_defaults` fills the turn detection fields an
    update leaves out when it turns server VAD back on."""
    turn = config.turn_detection or turn_defaults or TurnDetection()
    return dataclasses.replace(config, **update.changes(turn))
