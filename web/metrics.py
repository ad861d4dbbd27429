"""Prometheus metrics of one process: sessions, admission, turn latency, media, the event loop.

Each app has its own CollectorRegistry (several apps in one test process must not share one).
The relay knows nothing of Prometheus: `Metrics` is its registry's SessionObserver.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import os
from collections.abc import AsyncIterator, Callable, Iterator

from fastapi import APIRouter, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from relay import Session
from relay.events import EndReason

from .errors import ApiError
from .settings import Settings

NS = "voice_relay"
SESSION_LABELS = ("backend", "model", "link")
# End of user speech to first assistant audio: includes the VAD's silence hangover (~0.5 s).
LATENCY_BUCKETS_S = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 6.0, 10.0)
LAG_BUCKETS_S = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
LAG_PROBE_INTERVAL_S = 0.5
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


class Metrics:
    """The metrics and what feeds them; also the session registry's observer."""

    def __init__(self, settings: Settings) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)  # process_cpu_seconds_total, memory, fds
        PlatformCollector(registry=self.registry)

        r = self.registry
        self.active = Gauge(f"{NS}_sessions_active", "Live sessions", SESSION_LABELS, registry=r)
        self.started = Counter(
            f"{NS}_sessions_started", "Sessions started", SESSION_LABELS, registry=r
        )
        self.ended = Counter(f"{NS}_sessions_ended", "Sessions ended", ["reason"], registry=r)
        self.refusals = Counter(
            f"{NS}_admission_refusals", "Session requests refused", ["reason"], registry=r
        )
        self.max_sessions = Gauge(
            f"{NS}_max_sessions", "Sessions this process admits at once", registry=r
        )
        self.max_sessions.set(settings.resolved_max_sessions)
        self.latency = Histogram(
            f"{NS}_turn_latency_seconds",
            "End of user speech to first assistant audio sent",
            ["backend", "model"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.uplink_lost = Counter(
            f"{NS}_uplink_packets_lost", "Uplink RTP packets lost", ["backend"], registry=r
        )
        self.uplink_concealed = Counter(
            f"{NS}_uplink_packets_concealed",
            "Uplink packets replaced by Opus packet-loss concealment",
            ["backend"],
            registry=r,
        )
        self.uplink_late = Counter(
            f"{NS}_uplink_packets_late", "Uplink packets too late to play", ["backend"], registry=r
        )
        self.underruns = Counter(
            f"{NS}_playout_underruns",
            "Playout frames sent late (the event loop was behind)",
            ["backend"],
            registry=r,
        )
        self.backend_errors = Counter(
            f"{NS}_backend_errors", "Sessions ended by a backend failure", ["backend"], registry=r
        )
        self.loop_lag = Histogram(
            f"{NS}_event_loop_lag_seconds",
            f"How late a {LAG_PROBE_INTERVAL_S} s timer of the event loop fires",
            buckets=LAG_BUCKETS_S,
            registry=r,
        )
        self.workers = Gauge(
            f"{NS}_workers", "Worker processes serving sessions", ["worker", "pid"], registry=r
        )
        self.workers.labels(worker="0", pid=str(os.getpid())).set(1)
        self.worker_sessions = Gauge(
            f"{NS}_worker_sessions",
            "Live sessions placed on each media worker process (VOICE_RELAY_WORKERS > 1)",
            ["worker"],
            registry=r,
        )

    # -- media worker processes (web/workers/) ---------------------------------------------

    def watch_workers(self, pids: Callable[[], dict[int, int]]) -> None:
        """The workers replace this process in `voice_relay_workers`; their CPU and memory
        are read from /proc at each scrape. `pids`: the live workers' pids by index."""
        self.workers.clear()
        self.registry.register(WorkerProcessCollector(pids))

    def worker_up(self, index: int, pid: int) -> None:
        self.workers.labels(worker=str(index), pid=str(pid)).set(1)
        self.worker_sessions.labels(worker=str(index)).set(0)

    def worker_down(self, index: int, pid: int) -> None:
        with contextlib.suppress(KeyError):
            self.workers.remove(str(index), str(pid))

    # -- the registry's observer -----------------------------------------------------------

    def on_started(self, session: Session, link: str | None) -> None:
        self.session_started(session.backend.dialect, session.backend.model, link)

    def on_latency(self, session: Session, latency_ms: float) -> None:
        self.turn_latency(session.backend.dialect, session.backend.model, latency_ms)

    def on_ended(self, session: Session, link: str | None) -> None:
        reason = session.reason or EndReason.INTERNAL_ERROR
        backend = session.backend
        self.session_ended(backend.dialect, backend.model, link, reason, session.counters())

    # -- the same, from the facts alone (sessions running in a worker process) -------------

    def session_started(self, backend: str, model: str, link: str | None) -> None:
        labels = (backend, model, link or "")
        self.started.labels(*labels).inc()
        self.active.labels(*labels).inc()

    def turn_latency(self, backend: str, model: str, latency_ms: float) -> None:
        self.latency.labels(backend, model).observe(latency_ms / 1000)

    def session_ended(
        self, backend: str, model: str, link: str | None, reason: str, counters: dict[str, int]
    ) -> None:
        self.active.labels(backend, model, link or "").dec()
        self.ended.labels(reason).inc()
        if reason == EndReason.BACKEND_ERROR:
            self.backend_errors.labels(backend).inc()
        lost = counters.get("uplink_lost_packets", 0)
        self.uplink_lost.labels(backend).inc(lost)
        self.uplink_concealed.labels(backend).inc(lost)  # libopus conceals each lost packet
        self.uplink_late.labels(backend).inc(counters.get("uplink_late_packets", 0))
        self.underruns.labels(backend).inc(counters.get("playout_late_frames", 0))

    # -- admission and the event loop ------------------------------------------------------

    def refused(self, code: str) -> None:
        self.refusals.labels(code).inc()

    async def probe_loop_lag(self) -> None:
        """Runs until cancelled: how late each timer fires is how long the loop was blocked."""
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + LAG_PROBE_INTERVAL_S
            await asyncio.sleep(LAG_PROBE_INTERVAL_S)
            self.loop_lag.observe(max(0.0, loop.time() - due))


class WorkerProcessCollector(Collector):
    """CPU seconds and resident memory of each live worker process, from /proc (Linux)."""

    def __init__(self, pids: Callable[[], dict[int, int]]) -> None:
        self._pids = pids

    def collect(self) -> Iterator[Metric]:
        cpu = CounterMetricFamily(
            f"{NS}_worker_cpu_seconds", "User and system CPU time of each worker", labels=["worker"]
        )
        rss = GaugeMetricFamily(
            f"{NS}_worker_resident_memory_bytes",
            "Resident memory of each worker",
            labels=["worker"],
        )
        for index, pid in sorted(self._pids().items()):
            try:
                with open(f"/proc/{pid}/stat") as stat, open(f"/proc/{pid}/statm") as statm:
                    # The command name may hold spaces: fields start after its parenthesis.
                    fields = stat.read().rsplit(")", 1)[1].split()
                    pages = int(statm.read().split()[1])
            except (OSError, IndexError, ValueError):
                continue  # gone between the listing and the read
            cpu.add_metric([str(index)], (int(fields[11]) + int(fields[12])) / CLOCK_TICKS)
            rss.add_metric([str(index)], pages * PAGE_BYTES)
        yield cpu
        yield rss


@contextlib.asynccontextmanager
async def lag_probe(metrics: Metrics) -> AsyncIterator[None]:
    """The event-loop lag probe, running for the duration of the block."""
    task = asyncio.create_task(metrics.probe_loop_lag(), name="metrics-loop-lag")
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


router = APIRouter()


def require_scraper(request: Request, settings: Settings) -> None:
    """The bearer token when one is set; otherwise only a client on loopback."""
    token = settings.metrics_token
    if token is not None:
        given = request.headers.get("authorization", "")
        expected = f"Bearer {token.get_secret_value()}"
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise ApiError(401, "unauthorized", "a valid metrics token is required")
        return
    # Behind a trusted proxy this is the forwarded client: a remote scraper needs the token.
    host = request.client.host if request.client else ""
    try:
        local = ipaddress.ip_address(host).is_loopback
    except ValueError:
        local = False
    if not local:
        raise ApiError(
            403,
            "metrics_loopback_only",
            "/metrics answers only loopback clients: set VOICE_RELAY_METRICS_TOKEN to scrape "
            "from elsewhere",
        )


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    require_scraper(request, request.app.state.settings)
    registry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
