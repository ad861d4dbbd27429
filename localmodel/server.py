"""serve_realtime: one realtime protocol session of a local model over a MessageChannel."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable

from protocol.audio import BYTES_PER_MS

from .channel import MessageChannel
from .config import SessionConfig, TurnDetection, apply_update, is_ga_session
from .conversation import ContentPart, Conversation, ConversationItem, parse_client_item
from .hearing import ListenerFeed
from .loopback import LoopbackMirror
from .models import MODEL_SPECS, ModelSpec, TurnListener, UnknownModelError
from .outbox import ChannelClosed, Outbox
from .protocol import (
    MAX_APPEND_BASE64_CHARS,
    ClientEventError,
    Dialect,
    IdFactory,
    JsonObject,
    client_event_id,
    decode_audio,
    decode_event,
    error_fields,
)
from .response import ActiveResponse
from .vad import SpeechStarted, TurnDetector, TurnEvent, TurnSettings

logger = logging.getLogger(__name__)

MAX_INPUT_MS = 5 * 60 * 1000
MIN_COMMIT_MS = 100
# Bigger payloads are parsed and scored in a worker thread so that one huge event cannot stall
# every other session on the loop; typical 20-100 ms appends stay inline.
THREAD_MESSAGE_CHARS = 256 * 1024
# Room for one maximal append plus its envelope; anything bigger is refused without parsing.
MAX_MESSAGE_CHARS = MAX_APPEND_BASE64_CHARS + 64 * 1024
THREAD_VAD_MS = 200

Handler = Callable[[JsonObject], Awaitable[None]]


async def serve_realtime(channel: MessageChannel, model: str) -> None:
    """Runs one realtime protocol session of the local `model` until the channel ends."""
    spec = MODEL_SPECS.get(model)
    if spec is None:
        raise UnknownModelError(model)
    await RealtimeSession(channel, spec).run()


class RealtimeSession:
    """The server side of one realtime connection to a local model."""

    def __init__(self, channel: MessageChannel, spec: ModelSpec) -> None:
        self._channel = channel
        self._spec = spec
        self._ids = IdFactory()
        self._out = Outbox(channel, self._ids)
        self._model = spec.create()
        self._config = SessionConfig(
            id=self._ids.new("sess"),
            model=spec.name,
            turn_detection=spec.turn_detection if spec.server_vad else None,
        )
        self._conversation = Conversation()
        self._input = bytearray()  # the input buffer while turn detection is off
        self._input_bytes_total = 0
        # Built in run(), on a thread: a VAD model may take a while to load.
        self._detector: TurnDetector | None = None
        self._speech_item_id: str | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._response: ActiveResponse | None = None
        self._mirror = (
            LoopbackMirror(self._out, self._conversation, self._ids) if spec.mirrors_input else None
        )
        self._ears = (
            ListenerFeed(self._model, self._out, self._conversation)
            if isinstance(self._model, TurnListener)
            else None
        )
        self._turns = 0
        self._handlers: dict[str, Handler] = {
            "session.update": self._on_session_update,
            "input_audio_buffer.append": self._on_append,
            "input_audio_buffer.commit": self._on_commit,
            "input_audio_buffer.clear": self._on_clear,
            "conversation.item.create": self._on_item_create,
            "conversation.item.retrieve": self._on_item_retrieve,
            "conversation.item.truncate": self._on_item_truncate,
            "conversation.item.delete": self._on_item_delete,
            "response.create": self._on_response_create,
            "response.cancel": self._on_response_cancel,
        }

    async def run(self) -> None:
        sid = self._config.id
        logger.info("LocalSession(%s): started, model=%s", sid, self._spec.name)
        reason = "peer closed"
        try:
            if self._spec.preload is not None:
                # The first session of a process loads the weights while the user starts talking.
                self._start_task(asyncio.to_thread(self._spec.preload), "preload")
            self._detector = await asyncio.to_thread(
                self._new_detector, self._config.turn_detection
            )
            if self._ears is not None:
                self._ears.configure(self._config.instructions, self._config.voice)
                self._start_task(self._ears.send_events(), "input")
            await self._out.emit("session.created", {"session": self._session_json()})
            if self._mirror is not None:
                await self._mirror.start()
            async for message in self._channel:
                await self._handle(message)
        except ChannelClosed:
            reason = "send failed"
        except asyncio.CancelledError:
            reason = "cancelled"
            raise
        except Exception as exc:  # the channel failed (e.g. an abnormal close): the caller's call
            reason = f"channel error {type(exc).__name__}"
            raise
        finally:
            await self._stop_response()
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._model.aclose()
            if self._detector is not None:
                self._detector.close()
            logger.info("LocalSession(%s): ended (%s), turns=%d", sid, reason, self._turns)

    def _start_task(self, work: Awaitable[None], name: str) -> None:
        async def run() -> None:
            await work

        self._tasks.append(asyncio.create_task(run(), name=f"localmodel-{self._config.id}-{name}"))

    async def _handle(self, message: str | bytes) -> None:
        event: JsonObject | None = None
        try:
            if len(message) > MAX_MESSAGE_CHARS:
                raise ClientEventError(
                    "message_too_large",
                    f"The message has {len(message)} characters; the limit is {MAX_MESSAGE_CHARS}.",
                )
            if len(message) > THREAD_MESSAGE_CHARS:
                event = await asyncio.to_thread(decode_event, message)
            else:
                event = decode_event(message)
            handler = self._handlers.get(event["type"])
            if handler is None:
                raise ClientEventError(
                    "invalid_value", f"Unknown event type {event['type']!r}.", param="type"
                )
            await handler(event)
        except ClientEventError as exc:
            client_id = client_event_id(event) if event else None
            logger.debug("LocalSession(%s): rejected event: %s", self._config.id, exc.code)
            await self._out.emit("error", error_fields(exc, client_id))
        except ChannelClosed:
            raise
        except Exception:
            # A bug must not end the conversation: report it and keep serving.
            logger.exception("LocalSession(%s): failed to handle an event", self._config.id)
            error = ClientEventError(
                "internal_error",
                "The local backend failed to handle the event.",
                error_type="server_error",
            )
            await self._out.emit(
                "error", error_fields(error, client_event_id(event) if event else None)
            )

    # -- session ---------------------------------------------------------------------------

    async def _on_session_update(self, event: JsonObject) -> None:
        body = event.get("session")
        if not isinstance(body, dict):
            raise ClientEventError(
                "missing_required_parameter", "The event needs a 'session' object.", param="session"
            )
        ga = self._out.dialect is Dialect.GA or is_ga_session(body)
        config = apply_update(self._config, body, ga=ga, turn_defaults=self._spec.turn_detection)
        if config.voice != self._config.voice and self._has_spoken():
            raise ClientEventError(
                "invalid_value",
                "The voice cannot change once the model has responded with audio.",
                param="session.audio.output.voice" if ga else "session.voice",
            )
        if self._mirror is not None:
            # loopback mirrors every append and never takes turns, whatever the client asks.
            config = dataclasses.replace(config, turn_detection=None)
        if ga:
            self._out.dialect = Dialect.GA
        await self._apply_turn_detection(config.turn_detection)
        self._config = config
        if self._ears is not None:
            self._ears.configure(config.instructions, config.voice)
        await self._out.emit("session.updated", {"session": self._session_json()})

    async def _apply_turn_detection(self, settings: TurnDetection | None) -> None:
        if self._mirror is not None:
            return
        if settings is None:
            if self._detector is not None:
                self._input = bytearray(self._detector.flush())
                self._detector.close()
                self._detector = None
                if self._ears is not None:
                    self._ears.discard()
        elif self._detector is None:
            self._input.clear()
            self._detector = await asyncio.to_thread(self._new_detector, settings)
        else:
            self._detector.update(_turn_settings(settings))

    def _new_detector(self, settings: TurnDetection | None) -> TurnDetector | None:
        if settings is None or self._spec.mirrors_input:
            return None
        return TurnDetector(
            self._spec.voice_activity(),
            _turn_settings(settings),
            max_speech_ms=MAX_INPUT_MS,
            start_ms=self._input_bytes_total // BYTES_PER_MS,
        )

    def _session_json(self) -> JsonObject:
        return self._config.to_json(self._out.dialect)

    def _has_spoken(self) -> bool:
        return any(
            item.role == "assistant" and any(part.audio_bytes for part in item.content)
            for item in self._conversation
        )

    # -- input audio -----------------------------------------------------------------------

    async def _on_append(self, event: JsonObject) -> None:
        audio = event.get("audio")
        if self._mirror is not None:
            await self._mirror.mirror(audio)
            return
        if isinstance(audio, str) and len(audio) > THREAD_MESSAGE_CHARS:
            pcm = await asyncio.to_thread(decode_audio, audio)
        else:
            pcm = decode_audio(audio)
        buffered = len(self._input) if self._detector is None else self._detector.buffered_bytes
        if self._detector is None and buffered + len(pcm) > MAX_INPUT_MS * BYTES_PER_MS:
            raise ClientEventError(
                "input_audio_buffer_full",
                f"The input audio buffer holds at most {MAX_INPUT_MS // 60_000} minutes; "
                "this chunk was dropped. Commit or clear the buffer.",
                param="audio",
            )
        self._input_bytes_total += len(pcm)
        if self._detector is None:
            self._input += pcm
            return
        detector = self._detector
        if len(pcm) > THREAD_VAD_MS * BYTES_PER_MS:
            turn_events = await asyncio.to_thread(detector.feed, pcm)
        else:
            turn_events = detector.feed(pcm)
        for turn_event in turn_events:
            await self._on_turn_event(turn_event)
        if self._ears is not None:
            self._ears.follow(detector)

    async def _on_turn_event(self, event: TurnEvent) -> None:
        settings = self._config.turn_detection or TurnDetection()
        if isinstance(event, SpeechStarted):
            self._speech_item_id = self._ids.new("item")
            interrupted = await self._stop_response() if settings.interrupt_response else None
            await self._out.emit(
                "input_audio_buffer.speech_started",
                {"audio_start_ms": event.audio_start_ms, "item_id": self._speech_item_id},
            )
            if self._ears is not None:
                self._ears.started(self._speech_item_id)
            if interrupted is not None:
                await interrupted.finish("cancelled", "turn_detected")
            return
        item_id = self._speech_item_id or self._ids.new("item")
        self._speech_item_id = None
        await self._out.emit(
            "input_audio_buffer.speech_stopped",
            {"audio_end_ms": event.audio_end_ms, "item_id": item_id},
        )
        await self._commit(event.audio, item_id)
        if self._ears is not None:
            self._ears.committed(item_id, event.audio, settings.silence_duration_ms)
        if settings.create_response:
            if self._active_response() is None:
                self._start_response()
            else:
                logger.debug(
                    "LocalSession(%s): response still active, turn not answered", self._config.id
                )

    async def _on_commit(self, event: JsonObject) -> None:
        buffered = len(self._input) if self._detector is None else self._detector.buffered_bytes
        if buffered < MIN_COMMIT_MS * BYTES_PER_MS:
            raise ClientEventError(
                "input_audio_buffer_commit_empty",
                f"Error committing input audio buffer: expected at least {MIN_COMMIT_MS}ms of "
                f"audio, but the buffer only has {buffered / BYTES_PER_MS:.2f}ms.",
            )
        if self._detector is None:
            audio = bytes(self._input)
            self._input.clear()
        else:
            audio = self._detector.flush()
        item_id = self._speech_item_id or self._ids.new("item")
        self._speech_item_id = None
        await self._commit(audio, item_id)
        if self._ears is not None:
            self._ears.committed(item_id, audio)

    async def _commit(self, audio: bytes, item_id: str) -> None:
        part = ContentPart(type="input_audio", audio=audio, audio_bytes=len(audio))
        item = ConversationItem(id=item_id, role="user", content=[part])
        previous = self._conversation.add(item)
        await self._out.emit(
            "input_audio_buffer.committed", {"previous_item_id": previous, "item_id": item_id}
        )
        await self._emit_item(item, previous)

    async def _on_clear(self, event: JsonObject) -> None:
        self._input.clear()
        if self._detector is not None:
            self._detector.clear()
        self._speech_item_id = None
        if self._ears is not None:
            self._ears.discard()
        await self._out.emit("input_audio_buffer.cleared", {})

    # -- conversation ----------------------------------------------------------------------

    async def _on_item_create(self, event: JsonObject) -> None:
        raw = event.get("item")
        requested = raw.get("id") if isinstance(raw, dict) else None
        if isinstance(requested, str) and requested:
            if self._conversation.contains(requested):
                raise ClientEventError(
                    "invalid_value", f"Item {requested!r} already exists.", param="item.id"
                )
            item_id = requested
        else:
            item_id = self._ids.new("item")
        previous_id = event.get("previous_item_id")
        if previous_id is not None and not isinstance(previous_id, str):
            raise ClientEventError(
                "invalid_value", "previous_item_id must be a string.", param="previous_item_id"
            )
        item = parse_client_item(raw, item_id)
        if previous_id is not None and not self._conversation.contains(previous_id):
            raise ClientEventError(
                "item_not_found",
                f"No conversation item with id {previous_id!r}.",
                param="previous_item_id",
            )
        previous = self._conversation.add(item, previous_id)
        await self._emit_item(item, previous)

    async def _emit_item(self, item: ConversationItem, previous: str | None) -> None:
        fields = {"previous_item_id": previous, "item": item.to_json(self._out.dialect)}
        await self._out.emit("conversation.item.created", fields)
        await self._out.emit("conversation.item.done", fields)

    async def _on_item_retrieve(self, event: JsonObject) -> None:
        item = self._conversation.get(event.get("item_id"))
        await self._out.emit(
            "conversation.item.retrieved", {"item": item.to_json(self._out.dialect)}
        )

    async def _on_item_truncate(self, event: JsonObject) -> None:
        item_id, index, end_ms = self._conversation.truncate(
            event.get("item_id"), event.get("content_index", 0), event.get("audio_end_ms")
        )
        await self._out.emit(
            "conversation.item.truncated",
            {"item_id": item_id, "content_index": index, "audio_end_ms": end_ms},
        )

    async def _on_item_delete(self, event: JsonObject) -> None:
        item_id = event.get("item_id")
        self._conversation.delete(item_id)
        await self._out.emit("conversation.item.deleted", {"item_id": item_id})

    # -- responses -------------------------------------------------------------------------

    async def _on_response_create(self, event: JsonObject) -> None:
        active = self._active_response()
        if active is not None:
            raise ClientEventError(
                "conversation_already_has_active_response",
                f"Conversation already has an active response in progress: {active.id}. "
                "Wait until the response is finished before creating a new one.",
            )
        options = event.get("response") or {}
        if not isinstance(options, dict):
            raise ClientEventError("invalid_value", "response must be an object.", param="response")
        modalities = self._config.modalities
        requested = options.get("modalities", options.get("output_modalities"))
        if requested is not None:
            if (
                not isinstance(requested, list)
                or not requested
                or not set(requested) <= {"text", "audio"}
            ):
                raise ClientEventError(
                    "invalid_value",
                    "response.modalities must list 'text' and/or 'audio'.",
                    param="response.modalities",
                )
            modalities = ("text", "audio") if "audio" in requested else ("text",)
        instructions = options.get("instructions", self._config.instructions)
        if not isinstance(instructions, str):
            raise ClientEventError(
                "invalid_value",
                "response.instructions must be a string.",
                param="response.instructions",
            )
        self._start_response(modalities, instructions)

    async def _on_response_cancel(self, event: JsonObject) -> None:
        active = self._active_response()
        requested = event.get("response_id")
        if active is None or (requested is not None and requested != active.id):
            raise ClientEventError(
                "response_cancel_not_active", "Cancellation failed: no active response found."
            )
        await self._stop_response()
        await active.finish("cancelled", "client_cancelled")

    def _active_response(self) -> ActiveResponse | None:
        response = self._response
        return response if response is not None and response.active else None

    def _start_response(
        self, modalities: tuple[str, ...] | None = None, instructions: str | None = None
    ) -> None:
        config = self._config
        response = ActiveResponse(
            response_id=self._ids.new("resp"),
            item_id=self._ids.new("item"),
            outbox=self._out,
            conversation=self._conversation,
            model=self._model,
            request=self._conversation.model_request(
                instructions=config.instructions if instructions is None else instructions,
                voice=config.voice,
                modalities=modalities or config.modalities,
            ),
        )
        response.task = asyncio.create_task(
            response.run(), name=f"localmodel-{config.id}-{response.id}"
        )
        self._response = response
        self._turns += 1

    async def _stop_response(self) -> ActiveResponse | None:
        """Stops the response task at once; returns the response if it was still active."""
        response = self._response
        if response is None or response.task is None:
            return None
        active = response.active
        if not response.task.done():
            response.task.cancel()
            # wait() never raises the task's CancelledError into us, nor swallows our own.
            await asyncio.wait([response.task])
        return response if active else None


def _turn_settings(settings: TurnDetection) -> TurnSettings:
    return TurnSettings(
        threshold=settings.threshold,
        prefix_padding_ms=settings.prefix_padding_ms,
        silence_duration_ms=settings.silence_duration_ms,
    )
