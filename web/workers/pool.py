"""The front's media workers: start them, place sessions on them, replace the ones that die.

Admission stays in the front (it counts every session of the machine, so nothing is counted
twice); a session then lives wholly in one worker. Each worker has a supervisor task that
starts it, reads its event stream and, when the process exits, its stream breaks or its
heartbeat stops, kills what is left of it, ends its sessions here (their admission leases
are released) and starts a replacement on the same slot (the same share of the UDP range).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import httpx
from aiortc import RTCSessionDescription

from relay import SessionNotFound
from relay.errors import AtCapacity

from ..errors import ApiError
from ..links import DemoLink
from ..metrics import Metrics
from ..settings import Settings
from .messages import Answer, CloseAll, StartSession, WorkerConfig, WorkerEvent

logger = logging.getLogger(__name__)

RETRY_AFTER_S = 5
START_TIMEOUT_S = 60.0  # imports (aiortc, PyAV) and the socket; never a model
SILENT_S = 10.0  # no heartbeat for this long (one is due every 0.5 s): the worker is hung
CREATE_TIMEOUT_S = 60.0  # a session's negotiation, backend connection included
CLOSE_ALL_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
QUICK_FAILURE_S = 10.0  # a worker dying sooner after its start backs the next start off
MAX_RESTART_DELAY_S = 10.0
WORKER_LOST = "worker_lost"  # the end reason metrics count for calls of a worker that died
WORKER_MODULE = "web.workers.worker"


class SessionDirectory(Protocol):
    """Who else hears of sessions starting and ending (the cluster node)."""

    def session_started(
        self, session_id: str, backend: str, model: str, link: str | None
    ) -> None: ...

    def session_ended(self, session_id: str) -> None: ...


class WorkerLost(Exception):
    """A worker stopped serving: its process exited, its stream ended or it fell silent."""


@dataclass(eq=False)
class Placed:
    """A session the front placed on a worker: what to release when it ends."""

    session_id: str
    on_closed: Callable[[], None]


@dataclass(eq=False)
class Worker:
    index: int
    process: asyncio.subprocess.Process
    socket: str
    http: httpx.AsyncClient
    ready: bool = False  # its event stream is open: it takes sessions
    reported: int = 0  # live sessions, as its last heartbeat said
    sessions: dict[str, Placed] = field(default_factory=dict)
    # Sessions its metrics counted as started and not yet ended: (backend, model, link).
    metered: dict[str, tuple[str, str, str | None]] = field(default_factory=dict)

    @property
    def load(self) -> int:
        return max(len(self.sessions), self.reported)


class WorkerPool:
    """`count` media worker processes behind this front, and the sessions placed on them."""

    def __init__(
        self,
        settings: Settings,
        count: int,
        metrics: Metrics,
        directory: SessionDirectory | None = None,
    ) -> None:
        if count < 2:
            raise ValueError("a worker pool has 2 workers or more (1 serves in the front)")
        self._settings = settings
        self._count = count
        self._metrics = metrics
        self._directory = directory
        ranges = settings.udp_ports.split(count) if settings.udp_ports is not None else None
        self._udp_ports = [str(r) for r in ranges] if ranges else [None] * count
        self._token = secrets.token_urlsafe(32)
        self._dir = ""
        self._slots: list[Worker | None] = [None] * count
        self._supervisors: list[asyncio.Task[None]] = []
        self._first_start: list[asyncio.Future[None]] = []
        self._emptied = asyncio.Event()
        self._emptied.set()
        self._stopping = False
        self._hangups: set[asyncio.Task[None]] = set()
        metrics.watch_workers(self.pids)

    # -- what the front asks ---------------------------------------------------------------

    def __len__(self) -> int:
        """Sessions placed on live workers, still negotiating ones included."""
        return sum(len(w.sessions) for w in self._slots if w is not None)

    def __contains__(self, session_id: object) -> bool:
        return any(session_id in w.sessions for w in self._slots if w is not None)

    @property
    def count(self) -> int:
        return self._count

    def live(self) -> list[Worker]:
        return [w for w in self._slots if w is not None and w.ready]

    def pids(self) -> dict[int, int]:
        return {w.index: w.process.pid for w in self._slots if w is not None}

    async def create(
        self,
        offer: RTCSessionDescription,
        link: DemoLink | None,
        *,
        max_sessions: int,
        on_closed: Callable[[], None],
    ) -> tuple[str, RTCSessionDescription]:
        """Places a session on the least-loaded live worker; its id names the worker."""
        # Check and place with no await in between: racing offers cannot both take the last
        # place (as in SessionRegistry.create).
        if len(self) >= max_sessions:
            raise AtCapacity(
                f"This server is busy: it is already running {len(self)} conversations, its "
                "limit. Please try again in a few seconds.",
                retry_after_s=RETRY_AFTER_S,
            )
        live = self.live()
        if not live:
            raise AtCapacity(
                "This server's media workers are restarting. Please try again in a few seconds.",
                retry_after_s=RETRY_AFTER_S,
            )
        worker = min(live, key=lambda w: (w.load, w.index))
        session_id = f"{worker.index}-{secrets.token_urlsafe(12)}"
        worker.sessions[session_id] = Placed(session_id, on_closed)
        self._placed_changed(worker)
        body = StartSession(session_id=session_id, sdp=offer.sdp, type=offer.type, link=link)
        try:
            response = await worker.http.post(
                "/sessions",
                content=body.model_dump_json(),
                headers={"content-type": "application/json"},
                timeout=CREATE_TIMEOUT_S,
            )
        except httpx.HTTPError as exc:
            self._unplace(worker, session_id)
            if worker.process.returncode is None and worker.ready:
                # It may hold the session still (a timeout): it must not run uncounted.
                task = asyncio.create_task(self._hang_up(worker, session_id, "internal_error"))
                self._hangups.add(task)
                task.add_done_callback(self._hangups.discard)
            logger.warning("worker %d did not start session: %r", worker.index, exc)
            raise AtCapacity(
                "This server's media worker failed to start the call. Please try again.",
                retry_after_s=RETRY_AFTER_S,
            ) from None
        if response.status_code != 201:
            self._unplace(worker, session_id)
            raise refusal_of(response)
        answer = Answer.model_validate_json(response.content)
        return session_id, RTCSessionDescription(answer.sdp, answer.type)

    async def close(self, session_id: str, reason: str) -> None:
        """Ends a session on the worker that holds it; SessionNotFound if none does."""
        worker = next((w for w in self.live() if session_id in w.sessions), None)
        if worker is None:
            raise SessionNotFound(f"no live session {session_id!r}")
        try:
            response = await worker.http.delete(
                f"/sessions/{session_id}", params={"reason": reason}
            )
        except httpx.HTTPError:
            raise SessionNotFound(f"no live session {session_id!r}") from None  # its worker died
        if response.status_code != 204:
            raise refusal_of(response)

    async def close_all(self, reason: str) -> None:
        """Ends every session of every worker with `reason` (a drain's end, a shutdown)."""
        await asyncio.gather(*(self._close_all(w, reason) for w in self.live()))
        # Their `ended` events release the leases; give them a moment to arrive.
        await self.wait_empty(2.0)

    async def wait_empty(self, timeout_s: float) -> bool:
        """True once no session is placed, False if `timeout_s` passed first (a drain)."""
        try:
            async with asyncio.timeout(timeout_s):
                while len(self):
                    self._emptied.clear()
                    await self._emptied.wait()
        except TimeoutError:
            return False
        return True

    # -- starting and stopping -------------------------------------------------------------

    async def start(self) -> None:
        """Starts every worker; returns once each takes sessions."""
        self._dir = tempfile.mkdtemp(prefix="voice-relay-workers-")  # mode 0700: ours alone
        loop = asyncio.get_running_loop()
        self._first_start = [loop.create_future() for _ in range(self._count)]
        self._supervisors = [
            asyncio.create_task(self._supervise(i), name=f"worker-{i}-supervisor")
            for i in range(self._count)
        ]
        try:
            async with asyncio.timeout(START_TIMEOUT_S):
                await asyncio.gather(*self._first_start)
        except BaseException:
            await self.stop()
            raise
        logger.info("%d media workers: pids %s", self._count, sorted(self.pids().values()))

    async def stop(self) -> None:
        """Stops every worker (their remaining sessions end with `server_shutdown`)."""
        self._stopping = True
        for worker in self._slots:
            if worker is not None and worker.process.stdin is not None:
                worker.process.stdin.close()  # the worker stops when its stdin ends
        if self._supervisors:
            _, pending = await asyncio.wait(self._supervisors, timeout=STOP_TIMEOUT_S)
            for worker in self._slots:
                if worker is not None and worker.process.returncode is None:
                    worker.process.kill()
            await asyncio.gather(*self._supervisors, return_exceptions=True)
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)

    # -- one worker slot -------------------------------------------------------------------

    async def _supervise(self, index: int) -> None:
        loop = asyncio.get_running_loop()
        quick_failures = 0
        while not self._stopping:
            began = loop.time()
            try:
                worker = await self._spawn(index)
            except OSError as exc:
                self._first_failed(index, exc)
                logger.error("worker %d could not start: %s", index, exc)
            else:
                try:
                    await self._serve(worker)
                finally:
                    await self._bury(worker)
            if self._stopping:
                return
            quick_failures = quick_failures + 1 if loop.time() - began < QUICK_FAILURE_S else 0
            # The first failure restarts at once; a worker that keeps dying is restarted slower.
            delay = min(MAX_RESTART_DELAY_S, 0.5 * 2 ** (quick_failures - 2))
            await asyncio.sleep(delay if quick_failures > 1 else 0.0)

    async def _spawn(self, index: int) -> Worker:
        path = os.path.join(self._dir, f"worker-{index}.sock")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            WORKER_MODULE,
            stdin=asyncio.subprocess.PIPE,
            start_new_session=True,  # the terminal's Ctrl-C is the front's to handle
        )
        config = WorkerConfig(
            index=index,
            socket=path,
            token=self._token,
            relay_credential=self._settings.relay_credential,
            host=self._settings.host,
            port=self._settings.port,
            udp_ports=self._udp_ports[index],
        )
        assert process.stdin is not None
        process.stdin.write(config.model_dump_json().encode() + b"\n")
        http = httpx.AsyncClient(
            transport=httpx.AsyncHTTPTransport(uds=path),
            base_url="http://worker",
            headers={"authorization": f"Bearer {self._token}"},
            timeout=10.0,
        )
        worker = Worker(index, process, path, http)
        self._slots[index] = worker
        return worker

    async def _serve(self, worker: Worker) -> None:
        """Returns when the worker has stopped serving; what is left of it is killed."""
        exited = asyncio.create_task(worker.process.wait())
        reader = asyncio.create_task(self._read_events(worker))
        try:
            await asyncio.wait({exited, reader}, return_when=asyncio.FIRST_COMPLETED)
            if reader.done() and not reader.cancelled() and reader.exception() is not None:
                failure = reader.exception()
                if not self._stopping and worker.process.returncode is None:
                    logger.error("worker %d failed: %s; replacing it", worker.index, failure)
                self._first_failed(worker.index, WorkerLost(str(failure)))
            if worker.process.returncode is None and not self._stopping:
                worker.process.kill()
            await exited
        finally:
            reader.cancel()
            await asyncio.gather(reader, exited, return_exceptions=True)
        self._first_failed(worker.index, WorkerLost(f"exited with {worker.process.returncode}"))

    async def _read_events(self, worker: Worker) -> None:
        await self._wait_listening(worker)
        timeout = httpx.Timeout(10.0, read=SILENT_S)
        async with worker.http.stream("GET", "/events", timeout=timeout) as response:
            if response.status_code != 200:
                raise WorkerLost(f"its event stream answered {response.status_code}")
            async for line in response.aiter_lines():
                if line:
                    self._on_event(worker, WorkerEvent.model_validate_json(line))
        raise WorkerLost("its event stream ended")

    async def _wait_listening(self, worker: Worker) -> None:
        async with asyncio.timeout(START_TIMEOUT_S):
            while True:
                if worker.process.returncode is not None:
                    raise WorkerLost(f"exited with {worker.process.returncode} while starting")
                try:
                    if (await worker.http.get("/healthz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)

    def _on_event(self, worker: Worker, event: WorkerEvent) -> None:
        metrics = self._metrics
        if event.type == "hello":
            worker.ready = True
            worker.reported = event.sessions
            metrics.worker_up(worker.index, worker.process.pid)
            first = self._first_start[worker.index]
            if not first.done():
                first.set_result(None)
        elif event.type == "load":
            worker.reported = event.sessions
            metrics.loop_lag.observe(event.lag_s)
        elif event.type == "started":
            worker.metered[event.session_id] = (event.backend, event.model, event.link)
            metrics.session_started(event.backend, event.model, event.link)
            if self._directory is not None:
                self._directory.session_started(
                    event.session_id, event.backend, event.model, event.link
                )
        elif event.type == "latency":
            metrics.turn_latency(event.backend, event.model, event.latency_ms)
        elif event.type == "ended":
            if worker.metered.pop(event.session_id, None) is not None:
                metrics.session_ended(
                    event.backend, event.model, event.link, event.reason, event.counters
                )
                if self._directory is not None:
                    self._directory.session_ended(event.session_id)
            placed = self._unplace(worker, event.session_id)
            if placed is not None:
                placed.on_closed()

    async def _bury(self, worker: Worker) -> None:
        """The worker is gone: its calls have ended with it."""
        worker.ready = False
        if self._slots[worker.index] is worker:
            self._slots[worker.index] = None
        self._metrics.worker_down(worker.index, worker.process.pid)
        for session_id, (backend, model, link) in worker.metered.items():
            self._metrics.session_ended(backend, model, link, WORKER_LOST, {})
            if self._directory is not None:
                self._directory.session_ended(session_id)
        calls = len(worker.metered)
        worker.metered.clear()
        placed, worker.sessions = list(worker.sessions.values()), {}
        for session in placed:
            session.on_closed()
        self._placed_changed(worker)
        await worker.http.aclose()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(worker.socket)
        if not self._stopping:
            logger.error(
                "worker %d (pid %d) exited with status %s: its %d calls ended",
                worker.index,
                worker.process.pid,
                worker.process.returncode,
                calls,
            )

    # -- bookkeeping -----------------------------------------------------------------------

    def _unplace(self, worker: Worker, session_id: str) -> Placed | None:
        placed = worker.sessions.pop(session_id, None)
        if placed is not None:
            self._placed_changed(worker)
        return placed

    def _placed_changed(self, worker: Worker) -> None:
        if worker.ready:
            self._metrics.worker_sessions.labels(worker=str(worker.index)).set(len(worker.sessions))
        if not len(self):
            self._emptied.set()

    def _first_failed(self, index: int, exc: Exception) -> None:
        if self._first_start and not self._first_start[index].done():
            self._first_start[index].set_exception(exc)

    async def _close_all(self, worker: Worker, reason: str) -> None:
        try:
            await worker.http.post(
                "/close-all",
                content=CloseAll(reason=reason).model_dump_json(),
                headers={"content-type": "application/json"},
                timeout=CLOSE_ALL_TIMEOUT_S,
            )
        except httpx.HTTPError as exc:
            logger.warning("worker %d did not end its calls: %r", worker.index, exc)

    async def _hang_up(self, worker: Worker, session_id: str, reason: str) -> None:
        with contextlib.suppress(httpx.HTTPError):
            await worker.http.delete(f"/sessions/{session_id}", params={"reason": reason})


def refusal_of(response: httpx.Response) -> Exception:
    """A worker's error answer as the front raises it (same status, code and message)."""
    try:
        error = response.json()["error"]
        code, message = str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        code, message = "internal_error", "the media worker failed; it has been logged"
    retry_after = response.headers.get("retry-after")
    if response.status_code == 503 and code == "at_capacity":
        return AtCapacity(message, retry_after_s=int(retry_after or RETRY_AFTER_S))
    if response.status_code == 404 and code == "session_not_found":
        return SessionNotFound(message)
    headers = {"Retry-After": retry_after} if retry_after else None
    return ApiError(response.status_code, code, message, headers)
