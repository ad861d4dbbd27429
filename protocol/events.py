"""The realtime protocol's vocabulary: event names, the GA renames and the shapes both ends use.

StepFun and OpenAI's beta speak the beta names; OpenAI GA renamed a few server events and the
assistant's content part types. Code on both sides names events with the beta spelling
(`ServerEvent`, `ClientEvent`); `ga_name` and `beta_name` translate at the edge.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from .audio import PCM_RATE_HZ

Event = dict[str, Any]  # one JSON event, as sent on the socket


class Naming(StrEnum):
    """Which names a connection speaks."""

    BETA = "beta"  # OpenAI beta, StepFun
    GA = "ga"  # OpenAI GA


class ClientEvent(StrEnum):
    """Events a client sends to a realtime model."""

    SESSION_UPDATE = "session.update"
    INPUT_AUDIO_APPEND = "input_audio_buffer.append"
    INPUT_AUDIO_COMMIT = "input_audio_buffer.commit"
    INPUT_AUDIO_CLEAR = "input_audio_buffer.clear"
    ITEM_CREATE = "conversation.item.create"
    ITEM_RETRIEVE = "conversation.item.retrieve"
    ITEM_TRUNCATE = "conversation.item.truncate"
    ITEM_DELETE = "conversation.item.delete"
    RESPONSE_CREATE = "response.create"
    RESPONSE_CANCEL = "response.cancel"


class ServerEvent(StrEnum):
    """Events a realtime model sends, in their beta spelling."""

    ERROR = "error"
    SESSION_CREATED = "session.created"
    SESSION_UPDATED = "session.updated"
    SPEECH_STARTED = "input_audio_buffer.speech_started"
    SPEECH_STOPPED = "input_audio_buffer.speech_stopped"
    INPUT_AUDIO_COMMITTED = "input_audio_buffer.committed"
    INPUT_AUDIO_CLEARED = "input_audio_buffer.cleared"
    ITEM_CREATED = "conversation.item.created"
    ITEM_DONE = "conversation.item.done"  # GA only
    ITEM_RETRIEVED = "conversation.item.retrieved"
    ITEM_TRUNCATED = "conversation.item.truncated"
    ITEM_DELETED = "conversation.item.deleted"
    INPUT_TRANSCRIPT_DELTA = "conversation.item.input_audio_transcription.delta"
    INPUT_TRANSCRIPT_DONE = "conversation.item.input_audio_transcription.completed"
    INPUT_TRANSCRIPT_FAILED = "conversation.item.input_audio_transcription.failed"
    RESPONSE_CREATED = "response.created"
    RESPONSE_DONE = "response.done"
    OUTPUT_ITEM_ADDED = "response.output_item.added"
    OUTPUT_ITEM_DONE = "response.output_item.done"
    CONTENT_PART_ADDED = "response.content_part.added"
    CONTENT_PART_DONE = "response.content_part.done"
    AUDIO_DELTA = "response.audio.delta"
    AUDIO_DONE = "response.audio.done"
    AUDIO_TRANSCRIPT_DELTA = "response.audio_transcript.delta"
    AUDIO_TRANSCRIPT_DONE = "response.audio_transcript.done"
    TEXT_DELTA = "response.text.delta"
    TEXT_DONE = "response.text.done"
    # Function calls: the same names in GA. StepFun's deltas carry `arguments`, OpenAI's `delta`.
    FUNCTION_CALL_ARGUMENTS_DELTA = "response.function_call_arguments.delta"
    FUNCTION_CALL_ARGUMENTS_DONE = "response.function_call_arguments.done"
    # StepFun's own, beyond the OpenAI beta vocabulary.
    RESPONSE_CANCELLED = "response.cancelled"
    THINKING_DELTA = "response.thinking.delta"
    THINKING_DONE = "response.thinking.done"
    # voice-relay's own extension: tone of voice of a user turn (protocol.prosody).
    TONE = "relay.input_audio.tone"


# Beta name -> GA name, for the server events and assistant content part types GA renamed.
GA_NAMES: dict[str, str] = {
    ServerEvent.ITEM_CREATED: "conversation.item.added",
    ServerEvent.AUDIO_DELTA: "response.output_audio.delta",
    ServerEvent.AUDIO_DONE: "response.output_audio.done",
    ServerEvent.AUDIO_TRANSCRIPT_DELTA: "response.output_audio_transcript.delta",
    ServerEvent.AUDIO_TRANSCRIPT_DONE: "response.output_audio_transcript.done",
    ServerEvent.TEXT_DELTA: "response.output_text.delta",
    ServerEvent.TEXT_DONE: "response.output_text.done",
    "audio": "output_audio",  # content part types of assistant output
    "text": "output_text",
}
BETA_NAMES: dict[str, str] = {ga: beta for beta, ga in GA_NAMES.items()}
GA_ONLY: frozenset[str] = frozenset({ServerEvent.ITEM_DONE})

# OpenAI GA's audio format object for pcm16 24 kHz (beta and StepFun say "pcm16").
GA_PCM_FORMAT: dict[str, Any] = {"type": "audio/pcm", "rate": PCM_RATE_HZ}


def spelled(naming: Naming, beta: str) -> str | None:
    """How `naming` spells the beta-named event or part type; None: it has no such event."""
    if naming is Naming.GA:
        return GA_NAMES.get(beta, beta)
    return None if beta in GA_ONLY else beta


def beta_name(name: str) -> str:
    """The beta spelling of an event name in either naming."""
    return BETA_NAMES.get(name, name)


def error_message(event: Event) -> str:
    """The human message of an `error` event, with or without the `error` wrapper."""
    error = event.get("error")
    body = error if isinstance(error, dict) else event
    return str(body.get("message") or body.get("code") or "unknown error")
