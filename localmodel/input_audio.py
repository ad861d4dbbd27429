"""The input audio buffer: appends, commits and clears, and server VAD cutting turns from it."""

from __future__ import annotations

import asyncio
import logging

from protocol.audio import BYTES_PER_MS
from protocol.events import Event, ServerEvent

from .client_events import THREAD_DECODE_CHARS, ClientEventError, IdFactory, decode_audio
from .config import TurnDetection
from .conversation import ContentPart, ConversationItem
from .hearing import ListenerFeed
from .items import ItemEvents
from .models import ModelSpec
from .outbox import Outbox
from .responder import Responder
from .vad import SpeechStarted, TurnDetector, TurnEvent, TurnSettings

logger = logging.getLogger(__name__)

MAX_INPUT_MS = 5 * 60 * 1000
MIN_COMMIT_MS = 100
# Longer appends are scored by the VAD in a worker thread, as big ones are decoded there.
THREAD_VAD_MS = 200


class InputAudio:
    """The session's input audio: a plain buffer while turn detection is off, else a detector
    that commits each utterance and answers (or interrupts) as `turn_detection` says."""

    def __init__(
        self,
        spec: ModelSpec,
        outbox: Outbox,
        ids: IdFactory,
        items: ItemEvents,
        responder: Responder,
        ears: ListenerFeed | None,
    ) -> None:
        self._spec = spec
        self._out = outbox
        self._ids = ids
        self._items = items
        self._responder = responder
        self._ears = ears
        self._settings: TurnDetection | None = None
        self._buffer = bytearray()  # the input while turn detection is off
        self._detector: TurnDetector | None = None
        self._bytes_total = 0
        self._speech_item_id: str | None = None

    async def configure(self, settings: TurnDetection | None) -> None:
        """Turns server VAD on (the buffered audio is dropped), off (it keeps what it holds) or
        retunes it."""
        if settings is None:
            if self._detector is not None:
                self._buffer = bytearray(self._detector.flush())
                self._detector.close()
                self._detector = None
                if self._ears is not None:
                    self._ears.discard()
        elif self._detector is None:
            self._buffer.clear()
            # On a thread: a VAD model may take a while to load.
            self._detector = await asyncio.to_thread(self._new_detector, settings)
        else:
            self._detector.update(_turn_settings(settings))
        self._settings = settings

    def close(self) -> None:
        if self._detector is not None:
            self._detector.close()
            self._detector = None

    def _new_detector(self, settings: TurnDetection) -> TurnDetector:
        return TurnDetector(
            self._spec.voice_activity(),
            _turn_settings(settings),
            max_speech_ms=MAX_INPUT_MS,
            start_ms=self._bytes_total // BYTES_PER_MS,
        )

    @property
    def _buffered_bytes(self) -> int:
        return len(self._buffer) if self._detector is None else self._detector.buffered_bytes

    async def append(self, event: Event) -> None:
        audio = event.get("audio")
        if isinstance(audio, str) and len(audio) > THREAD_DECODE_CHARS:
            pcm = await asyncio.to_thread(decode_audio, audio)
        else:
            pcm = decode_audio(audio)
        if self._detector is None and len(self._buffer) + len(pcm) > MAX_INPUT_MS * BYTES_PER_MS:
            raise ClientEventError(
                "input_audio_buffer_full",
                f"The input audio buffer holds at most {MAX_INPUT_MS // 60_000} minutes; "
                "this chunk was dropped. Commit or clear the buffer.",
                param="audio",
            )
        self._bytes_total += len(pcm)
        detector = self._detector
        if detector is None:
            self._buffer += pcm
            return
        if len(pcm) > THREAD_VAD_MS * BYTES_PER_MS:
            turn_events = await asyncio.to_thread(detector.feed, pcm)
        else:
            turn_events = detector.feed(pcm)
        for turn_event in turn_events:
            await self._on_turn_event(turn_event)
        if self._ears is not None:
            self._ears.follow(detector)

    async def _on_turn_event(self, event: TurnEvent) -> None:
        settings = self._settings or TurnDetection()
        if isinstance(event, SpeechStarted):
            self._speech_item_id = self._ids.new("item")
            interrupted = await self._responder.stop() if settings.interrupt_response else None
            await self._out.emit(
                ServerEvent.SPEECH_STARTED,
                {"audio_start_ms": event.audio_start_ms, "item_id": self._speech_item_id},
            )
            if self._ears is not None:
                self._ears.started(self._speech_item_id)
            if interrupted is not None:
                await interrupted.finish("cancelled", "turn_detected")
            return
        item_id = self._take_item_id()
        await self._out.emit(
            ServerEvent.SPEECH_STOPPED, {"audio_end_ms": event.audio_end_ms, "item_id": item_id}
        )
        await self._commit(event.audio, item_id)
        if self._ears is not None:
            self._ears.committed(item_id, event.audio, settings.silence_duration_ms)
        if settings.create_response:
            if self._responder.active is None:
                self._responder.start()
            else:
                logger.debug(
                    "LocalSession(%s): response still active, turn not answered",
                    self._responder.config.id,
                )

    async def commit(self, event: Event) -> None:
        buffered = self._buffered_bytes
        if buffered < MIN_COMMIT_MS * BYTES_PER_MS:
            raise ClientEventError(
                "input_audio_buffer_commit_empty",
                f"Error committing input audio buffer: expected at least {MIN_COMMIT_MS}ms of "
                f"audio, but the buffer only has {buffered / BYTES_PER_MS:.2f}ms.",
            )
        if self._detector is None:
            audio = bytes(self._buffer)
            self._buffer.clear()
        else:
            audio = self._detector.flush()
        item_id = self._take_item_id()
        await self._commit(audio, item_id)
        if self._ears is not None:
            self._ears.committed(item_id, audio)

    def _take_item_id(self) -> str:
        """The id of the utterance in progress (named at speech_started), or a new one."""
        item_id = self._speech_item_id or self._ids.new("item")
        self._speech_item_id = None
        return item_id

    async def _commit(self, audio: bytes, item_id: str) -> None:
        part = ContentPart(type="input_audio", audio=audio, audio_bytes=len(audio))
        item = ConversationItem(id=item_id, role="user", content=[part])
        previous = self._items.conversation.add(item)
        await self._out.emit(
            ServerEvent.INPUT_AUDIO_COMMITTED, {"previous_item_id": previous, "item_id": item_id}
        )
        await self._items.emit(item, previous)

    async def clear(self, event: Event) -> None:
        self._buffer.clear()
        if self._detector is not None:
            self._detector.clear()
        self._speech_item_id = None
        if self._ears is not None:
            self._ears.discard()
        await self._out.emit(ServerEvent.INPUT_AUDIO_CLEARED, {})


def _turn_settings(settings: TurnDetection) -> TurnSettings:
    return TurnSettings(
        threshold=settings.threshold,
        prefix_padding_ms=settings.prefix_padding_ms,
        silence_duration_ms=settings.silence_duration_ms,
    )
