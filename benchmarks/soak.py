"""Soak: many sessions created and torn down every way; what the process holds before and after.

    python -m benchmarks.soak                    # 1,000 sessions
    python -m benchmarks.soak --sessions 200     # fewer

One process runs two relays in its own event loop (the product's app, served by uvicorn): one
answered by the embedded `echo` model, one whose backend refuses at once (a closed port). Real
aiortc peers take turns at five ways a session ends:

    delete           connects, then DELETE /api/sessions/{id}                  (hangup)
    peer-closes      connects, then the peer closes without DELETE              (peer_closed)
    peer-killed      connects from a child process, which is then SIGKILLed    (peer_closed:
                     on loopback the kernel refuses what the relay sends next; ice_failed
                     through consent checks where packets just vanish)
    never-connected  posts an offer, then the peer is gone before any check    (connect_timeout)
    backend-refused  the relay's backend refuses: 502                          (backend_error)

`--concurrency` jobs run at once; each waits for its sessions to leave the registry. Before the
first and after the last (once the registries are empty and the loop has settled) it prints the
process's open descriptors, asyncio tasks, threads, live RTCPeerConnection objects and resident
memory, after a warm-up round of each way. Runs inside a loopback-only network namespace
(benchmarks/netns.py). Exits 1 when descriptors, tasks or peer connections grew, a session
outlived its way's bound or a way misbehaved (e.g. a 5xx where a 201 was due).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import re
import signal
import socket
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aioice.ice
import httpx
from aiortc import RTCPeerConnection, RTCSessionDescription

from protocol.audio import FRAME_BYTES
from relay import SessionRegistry
from relay.opus import PlayoutEncoder
from relay.peer import create_peer_connection
from web.app import create_app
from web.server import RelayServer
from web.settings import Settings

from . import netns, procstat
from .fleet import LOOPBACK, free_port
from .paced_track import PacedPacketTrack

WAYS = ("delete", "peer-closes", "peer-killed", "never-connected", "backend-refused")
STEP_TIMEOUT_S = 15.0  # any one HTTP call or connection
HOLD_S = 0.3  # a connected call talks this long before it ends
CONSENT_INTERVAL_S, CONSENT_FAILURES = 1, 3  # a killed peer is noticed in ~3 s, not ~30 s
LEAKS = ("fds", "tasks", "peer_connections")  # what must not grow; threads and RSS may
SETTLE_S = 2.0


@dataclass(frozen=True)
class Holdings:
    fds: int
    tasks: int
    threads: int  # native ones too (/proc), as aiortc's codec threads are
    peer_connections: int  # RTCPeerConnection objects still alive after a collection
    rss_mb: float


def holdings() -> Holdings:
    gc.collect()
    with open("/proc/self/status") as f:
        threads = next(int(line.split()[1]) for line in f if line.startswith("Threads:"))
    pcs = sum(1 for o in gc.get_objects() if isinstance(o, RTCPeerConnection))
    sample = procstat.sample(os.getpid())
    return Holdings(
        sample.open_files, len(asyncio.all_tasks()), threads, pcs, sample.rss_bytes / 2**20
    )


def silent_packet() -> bytes:
    encoder, packet = PlayoutEncoder(), b""
    for _ in range(50):  # until the encoder codes digital silence
        packet = bytes(encoder.encode(bytes(FRAME_BYTES), 0, silent=True))
    return packet


class SilentTrack(PacedPacketTrack):
    """An open microphone in a quiet room: one pre-encoded Opus packet every 20 ms."""

    def __init__(self, packet: bytes) -> None:
        super().__init__()
        self._packet = packet

    def payload(self, index: int, now: float) -> bytes:
        return self._packet


class Peer:
    """A page: one audio track and an `events` data channel."""

    def __init__(self, packet: bytes) -> None:
        self.pc = create_peer_connection([], host_addresses=[LOOPBACK])
        self.pc.addTrack(SilentTrack(packet))
        self.pc.createDataChannel("events")
        self.connected = asyncio.Event()
        self.pc.on("connectionstatechange", self._on_state)

    def _on_state(self) -> None:
        if self.pc.connectionState == "connected":
            self.connected.set()

    async def post(self, http: httpx.AsyncClient) -> httpx.Response:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        offer = self.pc.localDescription
        return await http.post("/api/sessions", json={"sdp": offer.sdp, "type": "offer"})

    async def connect(self, http: httpx.AsyncClient) -> str:
        response = await self.post(http)
        if response.status_code != 201:
            raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")
        body = response.json()
        await self.pc.setRemoteDescription(RTCSessionDescription(body["sdp"], body["type"]))
        await asyncio.wait_for(self.connected.wait(), STEP_TIMEOUT_S)
        return str(body["session_id"])


@dataclass
class Relay:
    registry: SessionRegistry
    http: httpx.AsyncClient


class Soak:
    def __init__(self, opts: argparse.Namespace, relay: Relay, refusing: Relay) -> None:
        self.opts = opts
        self.relay, self.refusing = relay, refusing
        self.packet = silent_packet()
        self.done: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        # A session ends well within this, whatever its way (or it is counted as stuck).
        self.end_bound_s = opts.connect_timeout + CONSENT_INTERVAL_S * CONSENT_FAILURES + 10

    async def gone(self, session_ids: list[str]) -> None:
        deadline = time.monotonic() + self.end_bound_s
        while any(s in self.relay.registry for s in session_ids):
            if time.monotonic() > deadline:
                raise RuntimeError("a session outlived its bound")
            await asyncio.sleep(0.05)

    async def job(self, way: str, sessions: int) -> None:
        runs: dict[str, Callable[[], Awaitable[None]]] = {
            "delete": lambda: self.connected(hang_up=True),
            "peer-closes": lambda: self.connected(hang_up=False),
            "peer-killed": lambda: self.killed(sessions),
            "never-connected": self.never_connected,
            "backend-refused": self.refused,
        }
        try:
            await asyncio.wait_for(runs[way](), STEP_TIMEOUT_S + self.end_bound_s)
            self.done[way] += sessions
        except Exception as exc:  # a soak counts failures and carries on
            self.errors[f"{way}: {type(exc).__name__}: {str(exc)[:120]}"] += sessions

    async def connected(self, hang_up: bool) -> None:
        peer = Peer(self.packet)
        try:
            session_id = await peer.connect(self.relay.http)
            await asyncio.sleep(HOLD_S)
            if hang_up:
                response = await self.relay.http.delete(f"/api/sessions/{session_id}")
                if response.status_code != 204:
                    raise RuntimeError(f"DELETE answered {response.status_code}")
        finally:
            await peer.pc.close()
        await self.gone([session_id])

    async def never_connected(self) -> None:
        peer = Peer(self.packet)
        try:
            response = await peer.post(self.relay.http)
            if response.status_code != 201:
                raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")
        finally:
            await peer.pc.close()  # before the answer is applied: not one check is answered
        await self.gone([response.json()["session_id"]])

    async def refused(self) -> None:
        peer = Peer(self.packet)
        try:
            response = await peer.post(self.refusing.http)
        finally:
            await peer.pc.close()
        if response.status_code != 502:
            raise RuntimeError(f"a refused backend answered {response.status_code}, not 502")

    async def killed(self, sessions: int) -> None:
        url = str(self.relay.http.base_url)
        cmd = [sys.executable, "-m", "benchmarks.soak", "--peers", url, str(sessions)]
        child = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE)
        try:
            assert child.stdout is not None
            line = await asyncio.wait_for(child.stdout.readline(), STEP_TIMEOUT_S * 2)
            session_ids = json.loads(line)["sessions"] if line else []
            if len(session_ids) != sessions:
                raise RuntimeError(f"the peer process connected {len(session_ids)}/{sessions}")
        finally:
            child.send_signal(signal.SIGKILL)
            await child.wait()
        await self.gone(session_ids)

    async def run(self, jobs: list[tuple[str, int]], deadline: float) -> int:
        """Runs `jobs` `--concurrency` at a time until done or `deadline`; jobs left undone."""
        queue = list(reversed(jobs))

        async def worker() -> None:
            while queue and time.monotonic() < deadline:
                await self.job(*queue.pop())

        await asyncio.gather(*(worker() for _ in range(self.opts.concurrency)))
        return sum(n for _, n in queue)


def plan(sessions: int, kill_batch: int) -> list[tuple[str, int]]:
    """(way, sessions) jobs, the ways interleaved; killed peers come `kill_batch` per process."""
    jobs: list[tuple[str, int]] = []
    kills = 0
    for i in range(sessions):
        way = WAYS[i % len(WAYS)]
        if way != "peer-killed":
            jobs.append((way, 1))
            continue
        kills += 1
        if kills == kill_batch:
            jobs.append((way, kills))
            kills = 0
    if kills:
        jobs.append(("peer-killed", kills))
    return jobs


class LogCounts(logging.Handler):
    """Counts each session's end `reason=` and the loop's complaints (first line of each)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.reasons: Counter[str] = Counter()
        self.loop_errors: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        found = re.search(r" ended reason=(\S+)", message)
        if found:
            self.reasons[found[1]] += 1
        elif record.name == "asyncio" and record.levelno >= logging.ERROR:
            self.loop_errors[re.sub(r"<.*", "", message.splitlines()[0])[:80]] += 1


async def serve(settings: Settings) -> tuple[RelayServer, asyncio.Task[None], Relay]:
    sock = socket.socket()
    sock.bind((LOOPBACK, settings.port))
    app = create_app(settings)
    server = RelayServer(app, log_level="warning", lifespan="on")
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    # No keep-alive: idle pooled connections would count as descriptors held.
    http = httpx.AsyncClient(
        base_url=f"http://{LOOPBACK}:{settings.port}",
        timeout=STEP_TIMEOUT_S,
        limits=httpx.Limits(max_keepalive_connections=0),
    )
    return server, task, Relay(app.state.registry, http)


async def soak(opts: argparse.Namespace) -> dict[str, Any]:
    aioice.ice.CONSENT_INTERVAL, aioice.ice.CONSENT_FAILURES = CONSENT_INTERVAL_S, CONSENT_FAILURES
    logs = LogCounts()
    for name in ("relay.session", "asyncio"):
        logging.getLogger(name).addHandler(logs)
    logging.getLogger("relay.session").setLevel(logging.INFO)
    data_dir = tempfile.TemporaryDirectory(prefix="voice-relay-soak-")

    def settings(**extra: Any) -> Settings:
        values: dict[str, Any] = dict(
            host=LOOPBACK, port=free_port(), ice_addresses=[LOOPBACK], backend="local",
            model="echo", data_dir=Path(data_dir.name), connect_timeout_s=opts.connect_timeout,
            max_sessions=100_000, sessions_per_ip_per_minute=100_000,
        )  # fmt: skip
        return Settings(_env_file=None, **{**values, **extra})

    servers = [
        await serve(settings()),
        await serve(settings(backend_url=f"ws://{LOOPBACK}:{free_port()}/v1/realtime")),
    ]
    run = Soak(opts, servers[0][2], servers[1][2])
    try:
        await run.run([(way, 1) for way in WAYS], time.monotonic() + 120)  # warm-up
        await asyncio.sleep(SETTLE_S)
        before, warm_reasons = holdings(), Counter(logs.reasons)
        run.done.clear()
        started, cpu = time.monotonic(), time.process_time()
        left = await run.run(plan(opts.sessions, opts.kill_batch), started + opts.max_seconds)
        elapsed, cpu = time.monotonic() - started, time.process_time() - cpu
        await asyncio.sleep(SETTLE_S)
        after = holdings()
        live = len(run.relay.registry) + len(run.refusing.registry)
    finally:
        for server, task, relay in servers:
            await relay.http.aclose()
            server.should_exit = True
            await asyncio.wait_for(task, 15)
        data_dir.cleanup()
    grew = [k for k in LEAKS if getattr(after, k) > getattr(before, k)]
    return {
        "sessions": opts.sessions,
        "done": dict(run.done),
        "not_started": left,
        "errors": dict(run.errors),
        "end_reasons": dict(logs.reasons - warm_reasons),
        "loop_errors": dict(logs.loop_errors),  # e.g. a task destroyed while pending
        "live_after": live,
        "elapsed_s": round(elapsed, 1),
        "cpu_s": round(cpu, 1),  # this process (relay and in-process peers), not the children
        # Idle workers of bounded pools (AnyIO's, the loop's executor) stay: not a leak.
        "threads_after": dict(
            Counter(re.sub(r"[-_ ]?\d+", "", t.name) for t in threading.enumerate())
        ),
        "grew": grew,
        "before": asdict(before),
        "after": asdict(after),
    }


def report(result: dict[str, Any]) -> None:
    print(f"sessions {sum(result['done'].values())}/{result['sessions']} in "  # noqa: T201
          f"{result['elapsed_s']} s, {result['cpu_s']} s of CPU (this process)")  # fmt: skip
    for key, value in result.items():
        if key not in ("sessions", "elapsed_s", "cpu_s", "before", "after"):
            print(f"  {key}: {value}")  # noqa: T201
    print(f"  {'':18}{'before':>10}{'after':>10}{'change':>10}")  # noqa: T201
    for name, old in result["before"].items():
        new = result["after"][name]
        print(f"  {name:18}{old:>10.6g}{new:>10.6g}{new - old:>+10.4g}")  # noqa: T201


async def peers(url: str, count: int) -> None:
    """The child of `peer-killed`: connects `count` peers, says their ids, waits to be killed."""
    packet = silent_packet()
    async with httpx.AsyncClient(base_url=url, timeout=STEP_TIMEOUT_S) as http:
        ids = await asyncio.gather(*(Peer(packet).connect(http) for _ in range(count)))
    print(json.dumps({"sessions": ids}), flush=True)  # noqa: T201
    await asyncio.sleep(3600)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=6, help="jobs at once")
    parser.add_argument("--kill-batch", type=int, default=10, help="peers per killed process")
    parser.add_argument("--connect-timeout", type=float, default=2.0, help="the relay's setting")
    parser.add_argument("--max-seconds", type=float, default=900, help="stop starting jobs then")
    parser.add_argument("--json", help="also write the figures here")
    parser.add_argument("--no-netns", action="store_true", help="already isolated")
    parser.add_argument("--peers", nargs=2, metavar=("URL", "N"), help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.peers:
        asyncio.run(peers(opts.peers[0], int(opts.peers[1])))
        return
    if not opts.no_netns:
        netns.enter_loopback_only("benchmarks.soak")
    result = asyncio.run(soak(opts))
    report(result)
    if opts.json:
        Path(opts.json).write_text(json.dumps(result, indent=2) + "\n")
    failed = result["errors"] or result["live_after"] or result["not_started"]
    sys.exit(1 if failed or result["grew"] else 0)


if __name__ == "__main__":
    main()
