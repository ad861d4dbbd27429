"""serve_realtime: one realtime protocol session of a local model over a MessageChannel."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable

from protocol.events import ClientEvent, Event, Naming, ServerEvent

from .append_limit import AppendBudget, AppendLimit
from .channel import MessageChannel
from .client_events import (
    MAX_APPEND_BASE64_CHARS,
    THREAD_DECODE_CHARS,
    ClientEventError,
    IdFactory,
    client_event_id,
    decode_event,
    error_fields,
)
from .config import SessionConfig
from .conversation import Conversation
from .hearing import ListenerFeed
from .input_audio import InputAudio
from .items import ItemEvents
from .loopback import LoopbackMirror
from .models import MODEL_SPECS, ModelSpec, TurnListener, UnknownModelError
from .outbox import ChannelClosed, Outbox
from .responder import Responder
from .session_update import GaSession, apply_update, parse_update

logger = logging.getLogger(__name__)

# Room for one maximal append plus its envelope; anything bigger is refused without parsing.
MAX_MESSAGE_CHARS = MAX_APPEND_BASE64_CHARS + 64 * 1024

Handler = Callable[[Event], Awaitable[None]]


async def serve_realtime(
    channel: MessageChannel, model: str, *, append_limit: AppendLimit | None = None
) -> None:
    """Runs one realtime protocol session of the local `model` until the channel ends.

    With `append_limit`, audio sent faster than it allows is refused with an `error` event.
    """
    spec = MODEL_SPECS.get(model)
    if spec is None:
        raise UnknownModelError(model)
    await RealtimeSession(channel, spec, append_limit).run()


class RealtimeSession:
    """The server side of one realtime connection to a local model."""

    def __init__(
        self, channel: MessageChannel, spec: ModelSpec, append_limit: AppendLimit | None = None
    ) -> None:
        self._channel = channel
        self._spec = spec
        self._budget = AppendBudget(append_limit) if append_limit is not None else None
        ids = IdFactory()
        self._out = Outbox(channel, ids)
        self._model = spec.create()
        self._config = SessionConfig(
            id=ids.new("sess"),
            model=spec.name,
            turn_detection=spec.turn_detection if spec.server_vad else None,
        )
        self._conversation = Conversation()
        self._tasks: list[asyncio.Task[None]] = []
        self._mirror = (
            LoopbackMirror(self._out, self._conversation, ids) if spec.mirrors_input else None
        )
        self._ears = (
            ListenerFeed(self._model, self._out, self._conversation)
            if isinstance(self._model, TurnListener)
            else None
        )
        self._items = ItemEvents(self._out, ids, self._conversation)
        self._responder = Responder(self._out, ids, self._conversation, self._model, self._config)
        self._input = InputAudio(spec, self._out, ids, self._items, self._responder, self._ears)
        self._handlers: dict[str, Handler] = {
            ClientEvent.SESSION_UPDATE: self._on_session_update,
            ClientEvent.INPUT_AUDIO_APPEND: self._on_append,
            ClientEvent.INPUT_AUDIO_COMMIT: self._input.commit,
            ClientEvent.INPUT_AUDIO_CLEAR: self._input.clear,
            ClientEvent.ITEM_CREATE: self._on_item_create,
            ClientEvent.ITEM_RETRIEVE: self._items.retrieve,
            ClientEvent.ITEM_TRUNCATE: self._items.truncate,
            ClientEvent.ITEM_DELETE: self._items.delete,
            ClientEvent.RESPONSE_CREATE: self._responder.create,
            ClientEvent.RESPONSE_CANCEL: (
                self._responder.cancel if self._mirror is None else self._mirror.cancel
            ),
        }

    async def run(self) -> None:
        sid = self._config.id
        logger.info("LocalSession(%s): started, model=%s", sid, self._spec.name)
        reason = "peer closed"
        try:
            if self._spec.preload is not None:
                # The first session of a process loads the weights while the user starts talking.
                self._start_task(asyncio.to_thread(self._spec.preload), "preload")
            await self._input.configure(self._config.turn_detection)
            if self._ears is not None:
                self._ears.configure(self._config.instructions, self._config.voice)
                self._start_task(self._ears.send_events(), "input")
            await self._out.emit(ServerEvent.SESSION_CREATED, {"session": self._session_json()})
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
            await self._responder.stop()
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._model.aclose()
            self._input.close()
            logger.info(
                "LocalSession(%s): ended (%s), turns=%d", sid, reason, self._responder.turns
            )

    def _start_task(self, work: Awaitable[None], name: str) -> None:
        async def run() -> None:
            await work

        self._tasks.append(asyncio.create_task(run(), name=f"localmodel-{self._config.id}-{name}"))

    async def _handle(self, message: str | bytes) -> None:
        event: Event | None = None
        try:
            if isinstance(message, bytes):
                raise ClientEventError(
                    "binary_message_unsupported",
                    "Binary messages are not accepted; send each event as a JSON text message.",
                )
            if len(message) > MAX_MESSAGE_CHARS:
                raise ClientEventError(
                    "message_too_large",
                    f"The message has {len(message)} characters; the limit is {MAX_MESSAGE_CHARS}.",
                )
            if len(message) > THREAD_DECODE_CHARS:
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
            logger.debug("LocalSession(%s): rejected event: %s", self._config.id, exc.code)
            await self._out.emit(
                ServerEvent.ERROR, error_fields(exc, client_event_id(event) if event else None)
            )
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
                ServerEvent.ERROR, error_fields(error, client_event_id(event) if event else None)
            )

    async def _on_append(self, event: Event) -> None:
        audio = event.get("audio")
        if self._budget is not None and isinstance(audio, str):
            self._budget.charge(len(audio))
        if self._mirror is not None:
            await self._mirror.mirror(event.get("audio"))
        else:
            await self._input.append(event)

    async def _on_item_create(self, event: Event) -> None:
        # Audio in a created item is audio sent too: it spends the same budget as appends.
        item = event.get("item")
        content = item.get("content") if isinstance(item, dict) else None
        if self._budget is not None and isinstance(content, list):
            audio = [p.get("audio") for p in content if isinstance(p, dict)]
            chars = sum(len(a) for a in audio if isinstance(a, str))
            if chars:
                self._budget.charge(chars, param="item.content")
        await self._items.create(event)

    async def _on_session_update(self, event: Event) -> None:
        update = parse_update(event, self._out.naming)
        ga = isinstance(update, GaSession)
        config = apply_update(self._config, update, self._spec.turn_detection)
        if config.voice != self._config.voice and self._conversation.has_assistant_audio:
            raise ClientEventError(
                "invalid_value",
                "The voice cannot change once the model has responded with audio.",
                param="session.audio.output.voice" if ga else "session.voice",
            )
        if self._mirror is not None:
            # loopback mirrors every append and never takes turns, whatever the client asks.
            config = dataclasses.replace(config, turn_detection=None)
        if ga:
            self._out.naming = Naming.GA
        await self._input.configure(config.turn_detection)
        self._config = self._responder.config = config
        if self._ears is not None:
            self._ears.configure(config.instructions, config.voice)
        await self._out.emit(ServerEvent.SESSION_UPDATED, {"session": self._session_json()})

    def _session_json(self) -> Event:
        return self._config.to_json(self._out.naming)
