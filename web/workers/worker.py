"""A media worker: one process running the relay's sessions on its own core, for the front.

    python -m web.workers.worker      # started by the front (web/workers/pool.py), never by hand

It reads its `WorkerConfig` from stdin, serves the internal API of web/workers/messages.py on a
unix socket, and stops when stdin ends (the front has gone, even by SIGKILL). A session's peer
connection, backend socket and data channel all live here; admission, links, pages and the
embedded local model stay in the front. This module never loads a model.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import socket
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import APIRouter, FastAPI, Request, Response, params
from fastapi.responses import JSONResponse, StreamingResponse

from relay import EndReason, Session, SessionRegistry, parse_offer
from relay.udp_ports import PortRange

from ..backend import backend_config, session_options
from ..errors import ApiError, install_error_handlers
from ..server import SERVER_LIMITS
from ..settings import Settings
from .messages import HEARTBEAT_S, Answer, CloseAll, StartSession, WorkerConfig, WorkerEvent

logger = logging.getLogger(__name__)

# Events waiting for the front. It reads them as they come; a front that fell this far behind
# has lost track, so the stream ends and the front replaces this worker.
EVENT_QUEUE_LIMIT = 10_000


class EventFeed:
    """The registry's observer: what happens to sessions, queued for the front's event stream."""

    def __init__(self, limit: int = EVENT_QUEUE_LIMIT) -> None:
        self._limit = limit
        self._queue: asyncio.Queue[WorkerEvent | None] | None = None

    def subscribe(self) -> asyncio.Queue[WorkerEvent | None]:
        """A new stream replaces the one before (a front reconnecting)."""
        self.end()
        self._queue = asyncio.Queue(self._limit)
        return self._queue

    def current(self, queue: asyncio.Queue[WorkerEvent | None]) -> bool:
        return queue is self._queue

    def publish(self, event: WorkerEvent) -> None:
        queue = self._queue
        if queue is None:
            return
        try:
            queue.put_nowait(event)
        except asyncio.QueueFull:
            logger.error("the front stopped reading events: ending its stream")
            self._queue = None  # the stream ends once it has sent what it holds

    def end(self) -> None:
        queue, self._queue = self._queue, None
        if queue is not None:
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)

    def on_started(self, session: Session, link: str | None) -> None:
        self.publish(_event("started", session, link=link))

    def on_latency(self, session: Session, latency_ms: float) -> None:
        self.publish(_event("latency", session, latency_ms=latency_ms))

    def on_ended(self, session: Session, link: str | None) -> None:
        reason = session.reason or EndReason.INTERNAL_ERROR
        counters = session.counters()
        self.publish(_event("ended", session, link=link, reason=reason, counters=counters))


def _event(kind: str, session: Session, **fields: object) -> WorkerEvent:
    return WorkerEvent.model_validate(
        {
            "type": kind,
            "session_id": session.id,
            "backend": session.backend.dialect,
            "model": session.backend.model,
            **fields,
        }
    )


async def heartbeat(feed: EventFeed, registry: SessionRegistry) -> None:
    """Load and event-loop lag, every HEARTBEAT_S: the front's proof that this loop runs."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + HEARTBEAT_S
        await asyncio.sleep(HEARTBEAT_S)
        lag = max(0.0, loop.time() - due)
        feed.publish(WorkerEvent(type="load", sessions=len(registry), lag_s=lag))


def front_only(token: str) -> params.Depends:
    expected = f"Bearer {token}".encode()

    def require(request: Request) -> None:
        given = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            raise ApiError(401, "unauthorized", "this socket serves the front only")

    return params.Depends(require)


def create_worker_app(settings: Settings, token: str) -> FastAPI:
    feed = EventFeed()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        registry = SessionRegistry(session_options(settings), observer=feed)
        app.state.registry = registry
        beat = asyncio.create_task(heartbeat(feed, registry), name="worker-heartbeat")
        try:
            yield
        finally:
            beat.cancel()
            await registry.close_all(EndReason.SERVER_SHUTDOWN)
            feed.end()

    app = FastAPI(title="voice-relay worker", openapi_url=None, lifespan=lifespan)
    app.state.settings = settings
    app.state.feed = feed
    install_error_handlers(app)
    router = APIRouter(dependencies=[front_only(token)])

    @router.get("/healthz")
    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"sessions": len(request.app.state.registry)})

    @router.post("/sessions", status_code=201)
    async def start(request: Request, body: StartSession) -> Answer:
        registry: SessionRegistry = request.app.state.registry
        link = body.link
        _, answer = await registry.create(
            parse_offer(body.sdp, body.type),
            backend_config(settings, link),
            options=session_options(settings, link, registry.options.media),
            link=link.slug if link is not None else None,
            session_id=body.session_id,
        )
        return Answer(sdp=answer.sdp, type=answer.type)

    @router.delete("/sessions/{session_id}", status_code=204)
    async def close(request: Request, session_id: str, reason: str = "hangup") -> Response:
        await request.app.state.registry.close(session_id, reason)
        return Response(status_code=204)

    @router.post("/close-all", status_code=204)
    async def close_all(request: Request, body: CloseAll) -> Response:
        await request.app.state.registry.close_all(body.reason)
        return Response(status_code=204)

    @router.get("/events")
    async def events(request: Request) -> StreamingResponse:
        registry: SessionRegistry = request.app.state.registry
        return StreamingResponse(event_lines(feed, registry), media_type="application/x-ndjson")

    app.include_router(router)
    return app


async def event_lines(feed: EventFeed, registry: SessionRegistry) -> AsyncIterator[str]:
    queue = feed.subscribe()
    yield WorkerEvent(type="hello", sessions=len(registry)).model_dump_json() + "\n"
    while True:
        event = await queue.get()
        if event is None:
            return
        yield event.model_dump_json(exclude_defaults=True) + "\n"
        if not feed.current(queue) and queue.empty():
            return  # replaced, or overflowed: what it held is sent


class WorkerServer(uvicorn.Server):
    """Ends its sessions and the event stream before uvicorn waits for open responses."""

    def __init__(self, app: FastAPI, socket_path: str, log_level: str) -> None:
        options = {**SERVER_LIMITS, "access_log": False, "log_level": log_level}
        super().__init__(uvicorn.Config(app, uds=socket_path, **options))  # type: ignore[arg-type]
        self._app = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        registry = getattr(self._app.state, "registry", None)
        if isinstance(registry, SessionRegistry):
            await registry.close_all(EndReason.SERVER_SHUTDOWN)
        self._app.state.feed.end()
        await super().shutdown(sockets)


def stop_when_front_goes(server: uvicorn.Server) -> None:
    """Blocks on stdin until the front closes it or dies; then the server stops."""
    while sys.stdin.buffer.read(4096):
        pass
    server.should_exit = True


def worker_settings(config: WorkerConfig) -> Settings:
    """The front's settings (same environment, same listening address), with this worker's
    share of the UDP range and the front's credential for its /v1/realtime."""
    settings = Settings(host=config.host, port=config.port)
    if config.udp_ports is not None:
        settings = settings.model_copy(update={"udp_ports": PortRange.parse(config.udp_ports)})
    settings._relay_credential = config.relay_credential
    return settings


def main() -> int:
    config = WorkerConfig.model_validate_json(sys.stdin.buffer.readline())
    settings = worker_settings(config)
    logging.basicConfig(
        level=settings.log_level.upper(),
        format=f"%(asctime)s %(levelname)s worker{config.index} %(name)s %(message)s",
    )
    app = create_worker_app(settings, config.token)
    server = WorkerServer(app, config.socket, settings.log_level.lower())
    threading.Thread(target=stop_when_front_goes, args=(server,), daemon=True).start()
    server.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
