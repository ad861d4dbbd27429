"""The local model interface, the built-in `echo` and `loopback` models and the registry.

A model sees one committed user turn plus the session's persona and yields response parts. The
session consumes `respond()` as an async iterator and may cancel it at any await (barge-in,
response.cancel, disconnect), so a model that does CPU-heavy work runs it on a thread with
`worker.iterate_in_thread`, which bounds what is queued and tells the thread to stop.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Protocol

from relay.audio import BYTES_PER_MS

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


ResponsePart = AudioChunk | TranscriptDelta | InputTranscript


class LocalModel(Protocol):
    """One session's instance of a local model."""

    def respond(self, request: ModelRequest) -> AsyncIterator[ResponsePart]:
        """Streams the answer to `request`; the consumer may stop (cancel or close) it anytime."""
        ...

    async def aclose(self) -> None:
        """Releases what the instance holds; called once when the session ends."""
        ...


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """How the server runs a model: its factory, its VAD and its default turn detection."""

    name: str
    create: Callable[[], LocalModel]
    voice_activity: Callable[[], VoiceActivity] = EnergyVoiceActivity
    server_vad: bool = True  # turn detection on at session start
    mirrors_input: bool = False  # answer every append with the same audio (no turns)


class EchoModel:
    """Answers each turn with the user's own audio, in ECHO_CHUNK_MS pieces."""

    async def respond(self, request: ModelRequest) -> AsyncIterator[ResponsePart]:
        turn = request.turn
        if turn is None:
            yield TranscriptDelta("(echo) nothing to echo yet")
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


# New models register here. `create` runs once per session: import heavy dependencies inside it.
MODEL_SPECS: Mapping[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec("echo", EchoModel),
        ModelSpec("loopback", LoopbackModel, server_vad=False, mirrors_input=True),
    )
}
