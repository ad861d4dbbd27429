"""The embedded local backend on a real websockets server, a protocol client for it, and the
turns its tests share."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import json
import shutil
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve

from localmodel.server import serve_realtime
from protocol.audio import PCM_RATE_HZ
from protocol.events import Event

from .speech import CHUNK_BYTES, chunks, espeak_speech, tone, white_noise

# One beta turn's events under server VAD, without the deltas.
BETA_TURN = [
    "input_audio_buffer.speech_started",
    "input_audio_buffer.speech_stopped",
    "input_audio_buffer.committed",
    "conversation.item.created",
    "response.created",
    "response.output_item.added",
    "conversation.item.created",
    "response.content_part.added",
    "response.audio.done",
    "response.audio_transcript.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.done",
]
DELTA_TYPES = {
    "response.audio.delta",
    "response.audio_transcript.delta",
    "response.output_audio.delta",
    "response.output_audio_transcript.delta",
}


def b64(pcm: bytes) -> str:
    return base64.b64encode(pcm).decode("ascii")


@dataclasses.dataclass
class Backend:
    url: str
    ended: list[BaseException | None]  # how each serve_realtime call ended
    changed: asyncio.Event  # set whenever a call ends


@contextlib.asynccontextmanager
async def serve_backend() -> AsyncIterator[Backend]:
    """A real websockets server that serves `/v1/realtime?model=NAME` with serve_realtime."""
    ended: list[BaseException | None] = []
    changed = asyncio.Event()

    async def handler(connection: ServerConnection) -> None:
        assert connection.request is not None
        query = urllib.parse.urlsplit(connection.request.path).query
        model = urllib.parse.parse_qs(query).get("model", [""])[0]
        try:
            await serve_realtime(connection, model)
        except Exception as exc:
            ended.append(exc)
            await connection.close(4004, "unknown model")
        else:
            ended.append(None)
        changed.set()

    async with serve(handler, "127.0.0.1", 0, max_size=None) as server:
        host, port = next(iter(server.sockets)).getsockname()[:2]
        yield Backend(f"ws://{host}:{port}/v1/realtime", ended, changed)
    assert all(outcome is None for outcome in ended), ended


class RealtimeClient:
    """A protocol client that checks every server event_id is unique."""

    def __init__(self, websocket: ClientConnection, session: Event) -> None:
        self.websocket = websocket
        self.session = session
        self._event_ids = {session["event_id"]}

    async def send(self, event: Event) -> None:
        await self.websocket.send(json.dumps(event))

    async def append(self, pcm: bytes, chunk_bytes: int = CHUNK_BYTES) -> None:
        for chunk in chunks(pcm, chunk_bytes):
            await self.send({"type": "input_audio_buffer.append", "audio": b64(chunk)})

    async def recv(self, timeout_s: float = 5.0) -> Event:
        event: Event = json.loads(await asyncio.wait_for(self.websocket.recv(), timeout_s))
        assert event["event_id"] not in self._event_ids
        self._event_ids.add(event["event_id"])
        return event

    async def recv_until(self, event_type: str, timeout_s: float = 20.0) -> list[Event]:
        events: list[Event] = []
        async with asyncio.timeout(timeout_s):
            while not events or events[-1]["type"] != event_type:
                events.append(await self.recv(timeout_s))
        return events

    async def roundtrip(self, event: Event, reply_type: str) -> Event:
        await self.send(event)
        return (await self.recv_until(reply_type))[-1]


@contextlib.asynccontextmanager
async def realtime(backend: Backend, model: str) -> AsyncIterator[RealtimeClient]:
    async with connect(f"{backend.url}?model={model}", max_size=None) as websocket:
        created: Event = json.loads(await asyncio.wait_for(websocket.recv(), 5.0))
        assert created["type"] == "session.created"
        yield RealtimeClient(websocket, created)


def types(events: list[Event]) -> list[str]:
    return [event["type"] for event in events if event["type"] not in DELTA_TYPES]


def audio_of(events: list[Event], delta_type: str = "response.audio.delta") -> bytes:
    return b"".join(base64.b64decode(e["delta"]) for e in events if e["type"] == delta_type)


def speech_sample(directory: Path) -> bytes:
    """About 2.6 s of speech, pcm16 24 kHz mono (espeak-ng, or syllable-like tone bursts)."""
    if shutil.which("espeak-ng") is None:
        bursts = [
            tone(180, -18.0, 140.0 + 20 * i) + white_noise(60, -60.0, seed=7) for i in range(10)
        ]
        return b"".join(bursts)
    text = "Hello there, this is a test of the echo model."
    return espeak_speech(text, directory, voice="en")


async def manual_turns(client: RealtimeClient) -> None:
    """Turns server VAD off: turns are committed by hand."""
    updated = await client.roundtrip(
        {"type": "session.update", "session": {"turn_detection": None}}, "session.updated"
    )
    assert updated["session"]["turn_detection"] is None


async def commit(client: RealtimeClient, pcm: bytes) -> list[Event]:
    await client.append(pcm)
    await client.send({"type": "input_audio_buffer.commit"})
    return await client.recv_until("conversation.item.created")


async def start_long_response(client: RealtimeClient, seconds: int = 120) -> list[Event]:
    """Commits `seconds` of audio with VAD off and returns the events up to the first delta."""
    await manual_turns(client)
    await client.append(tone(1000, -30.0, 220.0) * seconds, chunk_bytes=PCM_RATE_HZ * 2)
    await client.send({"type": "input_audio_buffer.commit"})
    await client.recv_until("conversation.item.created")
    await client.send({"type": "response.create"})
    return await client.recv_until("response.audio.delta")
