"""RealtimeClient: one WebSocket to a realtime model, with a bounded, ordered outbox."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections import deque
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
MAX_APPEND_BYTES = 40 * BYTES_PER_MS  # merge queued audio into appends of at most 40 ms
MAX_PENDING_AUDIO_BYTES = 2_000 * BYTES_PER_MS  # beyond 2 s of unsent audio, drop the oldest
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
APPEND_PREFIX = f'{{"type":"{ClientEvent.INPUT_AUDIO_APPEND}","audio":"'


class RealtimeClient:
    """Speaks one dialect of the realtime protocol; `send` and `append_audio` never block."""

    def __init__(self, config: BackendConfig, dialect: Dialect) -> None:
        self.config = config
        self.dialect = dialect
        self._ws: ClientConnection | None = None
        self._outbox: deque[str | bytearray] = deque()
        self._pending_audio_bytes = 0
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self.session: Event = {}  # as the server last reported it
        self.dropped_audio_bytes = 0
        self.sent_audio_bytes = 0

    @property
    def connected(self) -> bool:
        return self._ws is not None

    @property
    def silence_ms(self) -> int:
        """The VAD silence that ends a turn: as the server reports it, else the dialect's."""
        reported = reported_silence_ms(self.session)
        return reported if reported is not None else self.dialect.silence_ms(self.config)

    async def connect(self) -> None:
        """Open the socket, wait for `session.created`, send our `session.update`."""
        url = self.dialect.connect_url(self.config)
        try:
            self._ws = await connect(
                url,
                additional_headers=self.dialect.headers(self.config),
                open_timeout=CONNECT_TIMEOUT_S,
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
        try:
            async with asyncio.timeout(SESSION_CREATED_TIMEOUT_S):
                while True:
                    event = self._decode(await self._ws.recv())
                    if event.get("type") == ServerEvent.SESSION_CREATED:
                        self._remember_session(event)
                        break
                    if event.get("type") == ServerEvent.ERROR:
                        raise BackendError(f"backend error: {error_message(event)}")
        except (TimeoutError, ConnectionClosed) as exc:
            await self.close()
            raise BackendError("backend did not start a session") from exc
        self._outbox.appendleft(json.dumps(self.dialect.session_update(self.config)))
        self._writer = asyncio.create_task(self._write(), name="realtime-client-writer")
        self._wake.set()

    def send(self, event: Event) -> None:
        self._outbox.append(json.dumps(event))
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
        for index, entry in enumerate(self._outbox):
            if isinstance(entry, bytearray):
                del self._outbox[index]
                self._pending_audio_bytes -= len(entry)
                self.dropped_audio_bytes += len(entry)
                return

    async def events(self) -> AsyncIterator[Event]:
        """Server events, renamed to beta names; ends when the socket closes."""
        if self._ws is None:
            raise BackendError("not connected")
        try:
            async for message in self._ws:
                event = self.dialect.normalize(self._decode(message))
                if event.get("type") == ServerEvent.SESSION_UPDATED:
                    self._remember_session(event)
                yield event
        except ConnectionClosed:
            return

    def _remember_session(self, event: Event) -> None:
        session = event.get("session")
        if isinstance(session, dict):
            self.session = session

    async def _write(self) -> None:
        assert self._ws is not None
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
                await self._ws.send(entry)
        except ConnectionClosed:
            pass

    @staticmethod
    def _decode(message: str | bytes) -> Event:
        try:
            event = json.loads(message)
        except ValueError:
            return {
                "type": ServerEvent.ERROR,
                "error": {"message": "backend sent a message that is not JSON"},
            }
        return event if isinstance(event, dict) else {}

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)
            self._writer = None
        if self._ws is not None:
            await self._ws.close()
            self._ws = None
        self._outbox.clear()
        self._pending_audio_bytes = 0
