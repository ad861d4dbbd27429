"""What the front and its media workers say to each other over a worker's unix socket.

Requests are JSON; `GET /events` is a stream of JSON lines, one `WorkerEvent` each. Every request
carries the worker's private token (`Authorization: Bearer`); the socket sits in a directory only
this user can enter.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from ..links import DemoLink

TOKEN_HEADER = "authorization"
HEARTBEAT_S = 0.5  # a worker reports its load and event-loop lag this often


class WorkerConfig(BaseModel):
    """The one line a worker reads on stdin at start; stdin then stays open until the front
    goes (its end tells the worker to stop). Secrets travel here, never in argv or environ."""

    index: int = Field(ge=0)
    socket: str  # the unix socket to serve on
    token: str  # the front presents it on every request
    relay_credential: str  # what the front's /v1/realtime knows the relay's own sessions by
    host: str  # the front's listening address and port: its /v1/realtime, public URL
    port: int
    udp_ports: str | None = None  # this worker's share of VOICE_RELAY_UDP_PORTS


class StartSession(BaseModel):
    session_id: str = Field(min_length=1, max_length=64)
    sdp: str
    type: str
    link: DemoLink | None = None  # the persona and limits it sets; the worker builds the rest


class Answer(BaseModel):
    sdp: str
    type: str


class CloseAll(BaseModel):
    reason: str


class WorkerEvent(BaseModel):
    """`hello` (first, once), `load` (every HEARTBEAT_S), `started`, `latency`, `ended`."""

    type: Literal["hello", "load", "started", "latency", "ended"]
    session_id: str = ""
    sessions: int = 0  # hello, load: live sessions
    lag_s: float = 0.0  # load: how late the worker's last heartbeat timer fired
    backend: str = ""
    model: str = ""
    link: str | None = None
    latency_ms: float = 0.0
    reason: str = ""
    counters: dict[str, int] = {}
