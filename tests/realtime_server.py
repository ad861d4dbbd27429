"""Local realtime-protocol servers: one that records what the relay sends (dialect tests), and
hostile ones that misbehave in one way each."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
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
    # What `session.created` reports; `session.updated` echoes each update when `echo_updates`,
    # else reports the created session unchanged.
    created_session: dict[str, Any] = field(default_factory=lambda: {"id": "sess_test"})
    echo_updates: bool = True
    # StepFun refuses an update it cannot use with an error (e.g. "voice ... is not valid").
    reject_updates_with: str | None = None
    reject_delay_s: float = 0.0
    # Like StepFun: one response at a time; response.create during one is an error, and a
    # cancelled one ends (response.done) this long after response.cancel.
    cancel_delay_s: float = 0.3
    responding: str | None = None  # the response in progress
    responses: int = 0
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
            if event["type"] == "session.update":
                await self._answer_update(event)
            elif event["type"] == "response.create":
                await self._create_response(event)
            elif event["type"] == "response.cancel" and self.responding is not None:
                asyncio.get_running_loop().call_later(
                    self.cancel_delay_s, self._finish_soon, self.responding, "cancelled"
                )

    async def _answer_update(self, event: dict[str, Any]) -> None:
        if self.reject_updates_with is not None:
            await asyncio.sleep(self.reject_delay_s)
            error = {"type": "invalid_request_error", "code": "invalid_param"}
            error |= {"message": self.reject_updates_with, "event_id": event.get("event_id")}
            await self.send({"type": "error", "error": error})
            return
        session = event["session"] if self.echo_updates else self.created_session
        await self.send({"type": "session.updated", "session": session})

    async def _create_response(self, event: dict[str, Any]) -> None:
        if self.responding is not None:
            error = {"type": "invalid_request_error", "code": "invalid_request"}
            error |= {"message": "ongoing response already exists"}
            await self.send({"type": "error", "error": error | {"event_id": event.get("event_id")}})
            return
        self.responses += 1
        await self.start_response(f"resp_server_{self.responses}")

    async def start_response(self, response_id: str) -> None:
        """A response in progress, as if the server's VAD or a response.create started it."""
        self.responding = response_id
        await self.send({"type": "response.created", "response": {"id": response_id}})

    async def finish_response(self, response_id: str, status: str = "completed") -> None:
        if self.responding == response_id:
            self.responding = None
        done = {"id": response_id, "status": status}
        await self.send({"type": "response.done", "response": done})

    def _finish_soon(self, response_id: str, status: str) -> None:
        asyncio.get_running_loop().create_task(self.finish_response(response_id, status))

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


# -- hostile backends: each is the whole life of one connection ---------------------------------

Behaviour = Callable[[ServerConnection], Awaitable[None]]
GOOD_PCM = bytes(range(256)) * 19  # 101 ms of pcm16 24 kHz that is not silence
# Fields of the wrong type for every event the relay handles, and messages that are not events.
GARBAGE: list[str] = [
    "not json at all {",
    "[1, 2, 3]",
    '"a string"',
    "null",
    json.dumps({"type": ["response.audio.delta"], "delta": "AAAA"}),
    json.dumps({"type": "response.created", "response": "resp_1"}),
    json.dumps({"type": "response.done", "response": 7}),
    json.dumps({"type": "response.audio_transcript.delta", "item_id": "i", "delta": 12}),
    json.dumps({"type": "response.audio_transcript.done", "transcript": ["x"]}),
    json.dumps({"type": "response.audio.delta", "item_id": ["i"], "delta": "AAAA"}),
    json.dumps({"type": "response.audio.delta", "delta": {"pcm": 1}}),
    json.dumps({"type": "input_audio_buffer.speech_stopped", "item_id": 5}),
    json.dumps({"type": "conversation.item.input_audio_transcription.completed", "transcript": 1}),
    json.dumps({"type": "error", "error": "just a string"}),
    json.dumps({"type": "session.updated", "session": "nope"}),
]


def created_event() -> str:
    return json.dumps({"type": "session.created", "session": {"id": "sess_hostile"}})


async def handshake(ws: ServerConnection) -> None:
    """session.created, then session.updated for the relay's session.update."""
    await ws.send(created_event())
    async for message in ws:
        event = json.loads(message)
        if event.get("type") == "session.update":
            await ws.send(json.dumps({"type": "session.updated", "session": event["session"]}))
            return


def audio_delta_event(pcm: bytes, item_id: str = "item_good") -> str:
    delta = base64.b64encode(pcm).decode()
    event = {"type": "response.audio.delta", "response_id": "resp_good", "item_id": item_id}
    return json.dumps(event | {"delta": delta})


async def read_forever(ws: ServerConnection) -> None:
    async for _ in ws:
        pass


async def never_created(ws: ServerConnection) -> None:
    await read_forever(ws)


async def close_at_once(ws: ServerConnection) -> None:
    await ws.close(1011, "going away")


async def garbage(ws: ServerConnection) -> None:
    await handshake(ws)
    for message in GARBAGE:
        await ws.send(message)
    await ws.send(audio_delta_event(GOOD_PCM * 10))  # the conversation goes on
    await read_forever(ws)


async def huge_delta(ws: ServerConnection) -> None:
    await handshake(ws)
    await ws.send(audio_delta_event(bytes(range(256)) * 30_000, item_id="item_huge"))  # 10 MB
    await ws.send(audio_delta_event(GOOD_PCM * 10))
    await read_forever(ws)


async def deaf(ws: ServerConnection) -> None:
    await handshake(ws)
    await ws.wait_closed()  # never reads again


async def error_flood(ws: ServerConnection) -> None:
    await handshake(ws)
    for i in range(5000):
        await ws.send(json.dumps({"type": "error", "error": {"message": f"overloaded {i}"}}))
    await read_forever(ws)


@asynccontextmanager
async def hostile_server(behaviour: Behaviour) -> AsyncIterator[str]:
    """A realtime URL whose server does `behaviour` on every connection.

    It reads into small buffers (a 4 KiB socket buffer, one queued message), so a server that
    stops reading stops the relay's writes soon.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    async with serve(behaviour, sock=sock, max_size=None, max_queue=1, close_timeout=1):
        yield f"ws://127.0.0.1:{port}/v1/realtime"


async def echo_key(ws: ServerConnection) -> None:
    """Repeats the Authorization header it was sent in an error, as a careless backend might."""
    assert ws.request is not None
    auth = ws.request.headers.get("Authorization", "")
    await handshake(ws)
    await ws.send(json.dumps({"type": "error", "error": {"message": f"key rejected: {auth}"}}))
    await read_forever(ws)
