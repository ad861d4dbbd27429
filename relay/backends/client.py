"""RealtimeClient: one WebSocket to a realtime model, with a bounded, ordered outbox."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections import Counter, deque
from collections.abc import AsyncIterator

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from protocol.audio import BYTES_PER_MS
from protocol.events import ClientEvent, Event, ServerEvent, error_message

from ..errors import BackendError
from .dialect import BackendConfig, Dialect, reported_silence_ms

logger = logging.getLogger(__name__)
# websockets logs handshake headers (the Authorization header among them) at DEBUG: keep its
# logger at INFO whatever the root level is.
wire_logger = logging.getLogger("relay.backends.wire")
wire_logger.setLevel(logging.INFO)

CONNECT_TIMEOUT_S = 10.0
SESSION_CREATED_TIMEOUT_S = 10.0
# StepFun answers a session.update it refuses (a voice it does not know) with an error instead
# of session.updated; until it confirms, VAD may be off and nobody would hear the caller.
SESSION_UPDATED_TIMEOUT_S = 10.0
MAX_EARLY_EVENTS = 64  # server events that come while we wait for session.updated
CLOSE_TIMEOUT_S = 2.0  # a backend that does not read cannot finish the closing handshake
# A backend that has not taken one message in this long has stopped reading: the session ends
# instead of waiting for the keepalive (40 s) while the person talks to no one.
SEND_STALL_TIMEOUT_S = 10.0
MAX_APPEND_BYTES = 40 * BYTES_PER_MS  # merge queued audio into appends of at most 40 ms
MAX_PENDING_AUDIO_BYTES = 2_000 * BYTES_PER_MS  # beyond 2 s of unsent audio, drop the oldest
MAX_PENDING_EVENTS = 256  # other unsent events; beyond that the newest are dropped
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
MAX_BACKEND_TEXT_CHARS = 500  # backend text shown to a page or written to a log
REDACTED = "[redacted]"
APPEND_PREFIX = f'{{"type":"{ClientEvent.INPUT_AUDIO_APPEND}","audio":"'


_noted: set[tuple[str, ...]] = set()  # configurations whose notes this process logged


class BackendRejected(BackendError):
    """The backend refused our session.update; the message is its own (redacted) words."""


def redact(text: str, secret: str | None) -> str:
    """`text` without `secret` in it, cut to a length a page or a log line can carry."""
    if secret:
        text = text.replace(secret, REDACTED)
    if len(text) > MAX_BACKEND_TEXT_CHARS:
        text = text[:MAX_BACKEND_TEXT_CHARS] + "…"
    return text


class RealtimeClient:
    """Speaks one dialect of the realtime protocol; `send` and `append_audio` never block.

    Messages that are not JSON objects are ignored and counted in `ignored` by kind.
    """

    def __init__(
        self, config: BackendConfig, dialect: Dialect, label: str = "RealtimeClient"
    ) -> None:
        self.config = config
        self.dialect = dialect
        self._label = label
        self._ws: ClientConnection | None = None
        self._outbox: deque[str | bytearray] = deque()
        self._pending_audio_bytes = 0
        self._pending_events = 0
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._failure: str | None = None
        self.session: Event = {}  # as the server last reported it
        self.dropped_audio_bytes = 0
        self.dropped_events = 0
        self.sent_audio_bytes = 0
        self.ignored: Counter[str] = Counter()
        self._early: deque[Event] = deque()  # received during connect(), yielded first

    @property
    def ready(self) -> bool:
        """The backend created and confirmed its session and takes our events."""
        return self._writer is not None

    @property
    def backlog(self) -> tuple[int, int]:
        """Unsent (events, audio bytes)."""
        return self._pending_events, self._pending_audio_bytes

    @property
    def silence_ms(self) -> int:
        """The VAD silence that ends a turn: as the server reports it, else the dialect's."""
        reported = reported_silence_ms(self.session)
        return reported if reported is not None else self.dialect.silence_ms(self.config)

    def redact(self, text: str) -> str:
        """Backend text made safe to show or log: the configured key never leaves."""
        return redact(text, self.config.api_key)

    async def connect(self) -> None:
        """Open the socket, wait for `session.created`, send our `session.update` and wait for
        `session.updated`. Raises BackendRejected if the backend refuses the update."""
        self._log_notes()
        url = self.dialect.connect_url(self.config)
        try:
            self._ws = await connect(
                url,
                additional_headers=self.dialect.headers(self.config),
                open_timeout=CONNECT_TIMEOUT_S,
                close_timeout=CLOSE_TIMEOUT_S,
                max_size=MAX_MESSAGE_BYTES,
                compression=None,
                logger=wire_logger,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            raise BackendError(
                f"{self.dialect.name} backend refused the connection: HTTP {status}"
            ) from None
        except (OSError, TimeoutError, WebSocketException) as exc:
            raise BackendError(
                f"{self.dialect.name} backend is unreachable: {type(exc).__name__}"
            ) from None
        what = "start a session"
        try:
            created = await self._wait_for(ServerEvent.SESSION_CREATED, SESSION_CREATED_TIMEOUT_S)
            self._remember_session(created)
            what = "confirm the session"
            update = json.dumps(self.dialect.session_update(self.config))
            async with asyncio.timeout(SESSION_UPDATED_TIMEOUT_S):
                await self._ws.send(update)
            self._early.append(
                await self._wait_for(ServerEvent.SESSION_UPDATED, SESSION_UPDATED_TIMEOUT_S)
            )
        except BackendError:
            await self.close()
            raise
        except (TimeoutError, ConnectionClosed) as exc:
            await self.close()
            raise BackendError(f"backend did not {what}") from exc
        self._writer = asyncio.create_task(self._write(), name=f"{self._label}-backend-writer")
        self._wake.set()

    async def _wait_for(self, kind: str, timeout_s: float) -> Event:
        """The next `kind` event; an error before it is the backend refusing us. Other events
        are kept (bounded) for `events()`."""
        assert self._ws is not None
        async with asyncio.timeout(timeout_s):
            while True:
                event = self._decode(await self._ws.recv())
                if event is None:
                    continue
                event = self.dialect.normalize(event)
                if event.get("type") == kind:
                    return event
                if event.get("type") == ServerEvent.ERROR:
                    message = self.redact(error_message(event))
                    if kind == ServerEvent.SESSION_CREATED:
                        raise BackendError(f"backend error: {message}")
                    logger.warning("%s backend rejected the session: %s", self._label, message)
                    raise BackendRejected(message)
                if len(self._early) < MAX_EARLY_EVENTS:
                    self._early.append(event)
                else:
                    self._ignore("early_overflow")

    def _log_notes(self) -> None:
        key = (self.dialect.name, self.config.model, self.config.region, self.config.voice or "")
        if key not in _noted:
            _noted.add(key)
            for note in self.dialect.notes(self.config):
                logger.warning("%s", note)

    def send(self, event: Event) -> None:
        if self._pending_events >= MAX_PENDING_EVENTS:
            if not self.dropped_events:
                logger.warning("%s backend is not taking events: dropping them", self._label)
            self.dropped_events += 1
            return
        self._outbox.append(json.dumps(event))
        self._pending_events += 1
        self._wake.set()

    def append_audio(self, pcm: bytes) -> None:
        """Queue pcm16 24 kHz mono audio; merged into 20–40 ms appends, oldest dropped when full."""
        tail = self._outbox[-1] if self._outbox else None
        if isinstance(tail, bytearray) and len(tail) + len(pcm) <= MAX_APPEND_BYTES:
            tail += pcm
        else:
            self._outbox.append(bytearray(pcm))
        self._pending_audio_bytes += len(pcm)
        if self._pending_audio_bytes > MAX_PENDING_AUDIO_BYTES:
            self._drop_oldest_audio()
        self._wake.set()

    def _drop_oldest_audio(self) -> None:
        if not self.dropped_audio_bytes:
            logger.warning("%s backend is not keeping up: dropping the oldest audio", self._label)
        for index, entry in enumerate(self._outbox):
            if isinstance(entry, bytearray):
                del self._outbox[index]
                self._pending_audio_bytes -= len(entry)
                self.dropped_audio_bytes += len(entry)
                return

    async def events(self) -> AsyncIterator[Event]:
        """Server events, renamed to beta names; ends when the socket closes.

        Raises BackendError if the client gave up on the backend (it stopped reading).
        """
        ws = self._ws
        if ws is None:
            raise BackendError("not connected")
        while self._early:
            early = self._early.popleft()
            if early.get("type") == ServerEvent.SESSION_UPDATED:
                self._remember_session(early)
            yield early
        try:
            async for message in ws:
                event = self._decode(message)
                if event is None:
                    continue
                event = self.dialect.normalize(event)
                if event.get("type") == ServerEvent.SESSION_UPDATED:
                    self._remember_session(event)
                yield event
        except ConnectionClosed:
            pass
        if self._failure is not None:
            raise BackendError(self._failure)
        logger.info(
            "%s backend closed the connection: code=%s reason=%r",
            self._label,
            ws.close_code,
            self.redact(ws.close_reason or ""),
        )

    def _remember_session(self, event: Event) -> None:
        session = event.get("session")
        if isinstance(session, dict):
            self.session = session

    async def _write(self) -> None:
        ws = self._ws
        assert ws is not None
        try:
            while True:
                while not self._outbox:
                    self._wake.clear()
                    await self._wake.wait()
                entry = self._outbox.popleft()
                if isinstance(entry, bytearray):
                    self._pending_audio_bytes -= len(entry)
                    self.sent_audio_bytes += len(entry)
                    entry = APPEND_PREFIX + base64.b64encode(entry).decode("ascii") + '"}'
                else:
                    self._pending_events -= 1
                async with asyncio.timeout(SEND_STALL_TIMEOUT_S):
                    await ws.send(entry)
        except ConnectionClosed:
            pass
        except TimeoutError:
            self._failure = f"backend stopped reading for {SEND_STALL_TIMEOUT_S:g} s"
            logger.warning("%s %s", self._label, self._failure)
            _abort(ws)

    def _decode(self, message: str | bytes) -> Event | None:
        try:
            event = json.loads(message)
        except ValueError:
            self._ignore("not_json")
            return None
        if not isinstance(event, dict):
            self._ignore("not_an_object")
            return None
        return event

    def _ignore(self, kind: str) -> None:
        if kind not in self.ignored:
            logger.warning("%s ignored a backend message: %s", self._label, kind)
        self.ignored[kind] += 1

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)
            self._writer = None
        ws, self._ws = self._ws, None
        if ws is not None:
            try:
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    await ws.close()
            except TimeoutError:
                _abort(ws)
        self._outbox.clear()
        self._early.clear()
        self._pending_audio_bytes = 0
        self._pending_events = 0


def _abort(ws: ClientConnection) -> None:
    # websockets waits for the peer to read our close frame; one that stopped reading never does.
    ws.transport.abort()
