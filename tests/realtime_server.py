"""A local realtime-protocol server for dialect tests: records what the relay sends."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.server import ServerConnection, serve

AUDIO_DELTA = {"stepfun": "response.audio.delta", "openai": "response.output_audio.delta"}


@dataclass
class RecordingServer:
    """One realtime server; `connections` holds each relay connection's requests and events."""

    dialect: str
    url: str = ""
    # What `session.created` reports; `session.updated` echoes each update when `echo_updates`.
    created_session: dict[str, Any] = field(default_factory=lambda: {"id": "sess_test"})
    echo_updates: bool = True
    received: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    connection: ServerConnection | None = None
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    new_event: asyncio.Event = field(default_factory=asyncio.Event)

    async def handler(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        self.headers.append(dict(ws.request.headers.raw_items()))
        self.paths.append(ws.request.path)
        self.connection = ws
        await self.send({"type": "session.created", "session": self.created_session})
        self.connected.set()
        async for message in ws:
            event = json.loads(message)
            self.received.append(event)
            self.new_event.set()
            if event["type"] == "session.update" and self.echo_updates:
                await self.send({"type": "session.updated", "session": event["session"]})

    async def send(self, event: dict[str, Any]) -> None:
        assert self.connection is not None
        await self.connection.send(json.dumps(event))

    async def send_audio(
        self, response_id: str, item_id: str, pcm: bytes, chunk_ms: int = 100
    ) -> None:
        step = 48 * chunk_ms
        for start in range(0, len(pcm), step):
            await self.send(
                {
                    "type": AUDIO_DELTA[self.dialect],
                    "response_id": response_id,
                    "item_id": item_id,
                    "output_index": 0,
                    "content_index": 0,
                    "delta": base64.b64encode(pcm[start : start + step]).decode(),
                }
            )

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.received if e["type"] == kind]

    def appended_bytes(self) -> list[int]:
        return [
            len(base64.b64decode(e["audio"])) for e in self.of_type("input_audio_buffer.append")
        ]

    async def wait_for(self, kind: str, count: int = 1, timeout_s: float = 5.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout_s):
            while len(self.of_type(kind)) < count:
                self.new_event.clear()
                await self.new_event.wait()
        return self.of_type(kind)[count - 1]

    async def wait_for_audio_ms(self, ms: float, timeout_s: float = 5.0) -> None:
        async with asyncio.timeout(timeout_s):
            while sum(self.appended_bytes()) < ms * 48:
                self.new_event.clear()
                await self.new_event.wait()


@asynccontextmanager
async def recording_server(dialect: str, **options: Any) -> AsyncIterator[RecordingServer]:
    recorder = RecordingServer(dialect, **options)
    async with serve(recorder.handler, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        recorder.url = f"ws://127.0.0.1:{port}/v1/realtime"
        yield recorder
