"""The server's side of a listening model: utterances in as the VAD cuts them, events out."""

from __future__ import annotations

import dataclasses
import logging

from protocol.events import Event, ServerEvent

from .conversation import Conversation
from .models import (
    InputEvent,
    InputTone,
    InputTranscriptDelta,
    InputTranscriptDone,
    TurnListener,
)
from .outbox import ChannelClosed, Outbox
from .vad import TurnDetector

logger = logging.getLogger(__name__)

# On `...input_audio_transcription.completed`: when recognition ran, in ms after the end of
# speech (models.RecognitionTiming: stopped_ms, started_ms, ended_ms, reused_pause_pass).
RECOGNITION_TIMING_FIELD = "relay_recognition_timing"


class ListenerFeed:
    """Hands a `TurnListener` each utterance exactly once, in order, and sends what it finds
    out about user items (transcripts, tone of voice) as protocol events."""

    def __init__(self, listener: TurnListener, outbox: Outbox, conversation: Conversation) -> None:
        self._listener = listener
        self._out = outbox
        self._conversation = conversation
        self._item_id: str | None = None  # the utterance being heard
        self._heard = 0  # bytes of it handed over

    def configure(self, instructions: str, voice: str) -> None:
        self._listener.configure(instructions, voice)

    def started(self, item_id: str) -> None:
        self.discard()
        self._listener.speech_started(item_id)
        self._item_id = item_id

    def follow(self, detector: TurnDetector) -> None:
        """After each append: the utterance's new audio, while the detector is in speech."""
        if self._item_id is not None and detector.in_speech:
            audio = detector.speech_audio(self._heard)
            self._heard += len(audio)
            self._listener.hear(audio, detector.silence_ms)

    def committed(self, item_id: str, audio: bytes, silence_ms: int = 0) -> None:
        """The utterance (or a manual commit) became `item_id`; `silence_ms` ends `audio`."""
        if self._item_id == item_id:
            self._listener.hear(audio[self._heard :], silence_ms)
        else:
            self.discard()
        self._item_id = None
        self._heard = 0
        self._listener.speech_stopped(item_id, audio)

    def discard(self) -> None:
        if self._item_id is not None:
            self._listener.speech_discarded()
        self._item_id = None
        self._heard = 0

    async def send_events(self) -> None:
        """Runs for the session: sends the listener's findings as they come."""
        try:
            async for event in self._listener.input_events():
                await self._send(event)
        except ChannelClosed:
            logger.debug("ListenerFeed: channel closed")

    async def _send(self, event: InputEvent) -> None:
        fields: Event = {"item_id": event.item_id, "content_index": 0}
        if isinstance(event, InputTranscriptDelta):
            name = ServerEvent.INPUT_TRANSCRIPT_DELTA
            fields["delta"] = event.delta
        elif isinstance(event, InputTranscriptDone):
            name = ServerEvent.INPUT_TRANSCRIPT_DONE
            fields["transcript"] = event.transcript
            if event.timing is not None:
                # A vendor field (clients ignore what they do not know): for the benchmarks.
                fields[RECOGNITION_TIMING_FIELD] = dataclasses.asdict(event.timing)
            if self._conversation.contains(event.item_id):
                for part in self._conversation.get(event.item_id).content:
                    if part.type == "input_audio":
                        part.transcript = event.transcript
        elif isinstance(event, InputTone):
            name = ServerEvent.TONE
            tone = event.features.to_event()
            del tone["type"]  # to_event() names it ServerEvent.TONE too
            fields.update(tone)
        else:
            name = ServerEvent.INPUT_TRANSCRIPT_FAILED
            fields["error"] = {
                "type": "transcription_error",
                "code": "local_asr_failed",
                "message": event.message,
            }
        await self._out.emit(name, fields)
