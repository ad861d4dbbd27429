"""Every core of one machine: `voice-relay serve` with VOICE_RELAY_WORKERS=2 (web/workers/).

A real front process and its two media worker processes, real aiortc peers:
- sessions are placed on the least-loaded worker (its index starts the session id) and
  `/metrics` on the front shows both workers and every session;
- a worker killed with SIGKILL ends only its own calls (their peers see the connection go),
  the other worker's calls keep their audio, the front frees their places and a replacement
  worker (a new pid on the same slot) takes new calls; a hung worker (SIGSTOP: no heartbeat)
  is killed and replaced the same way;
- admission counts the whole machine: max sessions and the per-address rate over both workers;
- SIGTERM drains the calls of both workers, then ends them with `server_draining`;
- each worker binds its media in its own share of VOICE_RELAY_UDP_PORTS;
- with Redis, an instance's workers' calls are in the cluster's session directory and a
  `DELETE` through another instance ends one;
- `relay_bench --scenario workers` measures one worker against two, front and workers counted.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from benchmarks.fleet import Server, child_env, free_port, spawn, stop, wait_listening
from protocol.audio import PCM_RATE_HZ
from relay.udp_ports import PortRange
from web.settings import DEFAULT_MAX_EMBEDDED_ASSISTANT_SESSIONS, DEFAULT_MAX_SESSIONS
from web.workers import machine_settings
from web.workers.worker import create_worker_app

from .cluster import cluster, cluster_view, session_instances
from .conftest import make_settings, wait_until
from .media import LOOPBACK, ClientPeer, SpeechTrack
from .speech import tone
from .test_bench_smoke import run_bench
from .test_udp_ports import candidate_ports

pytestmark = pytest.mark.integration

AUDIO_1S = PCM_RATE_HZ * 2  # bytes of one second of pcm16 mono
ADMIN = "admin-token-for-workers-test"


@asynccontextmanager
async def machine(tmp_path: Path, **env: str) -> AsyncIterator[tuple[Server, httpx.AsyncClient]]:
    """`voice-relay serve` as a child process, with two media workers."""
    port = free_port()
    environ = child_env(
        VOICE_RELAY_BACKEND="local",
        VOICE_RELAY_MODEL="loopback",
        VOICE_RELAY_WORKERS="2",
        VOICE_RELAY_DATA_DIR=str(tmp_path),
        **env,
    )
    cmd = [sys.executable, "-m", "web.cli", "serve", "--host", LOOPBACK, "--port", str(port)]
    server = Server("relay", "relay", await spawn(cmd, environ), f"http://{LOOPBACK}:{port}")
    try:
        await wait_listening(server, port)
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            yield server, http
    finally:
        await stop(server.process)


async def start_call(http: httpx.AsyncClient) -> ClientPeer:
    client = ClientPeer(SpeechTrack(tone(120_000, hz=600.0), leading_silence_s=0.2))
    await client.connect(http)
    await wait_until(lambda: len(client.received) > AUDIO_1S // 4, timeout_s=10)
    return client


async def post_offer(http: httpx.AsyncClient) -> httpx.Response:
    peer = ClientPeer()
    try:
        offer = await peer.offer()
        return await http.post("/api/sessions", json={"sdp": offer.sdp, "type": offer.type})
    finally:
        await peer.close()


def worker_of(client: ClientPeer) -> str:
    assert client.session_id is not None
    return client.session_id.split("-", 1)[0]


async def samples(http: httpx.AsyncClient, name: str) -> Iterator[tuple[dict[str, str], float]]:
    response = await http.get("/metrics")
    assert response.status_code == 200
    found = []
    for family in text_string_to_metric_families(response.text):
        found += [(s.labels, s.value) for s in family.samples if s.name == name]
    return iter(found)


async def worker_pids(http: httpx.AsyncClient) -> dict[str, int]:
    return {
        labels["worker"]: int(labels["pid"])
        for labels, value in await samples(http, "voice_relay_workers")
        if value == 1
    }


async def total(http: httpx.AsyncClient, name: str, **match: str) -> float:
    return sum(
        value
        for labels, value in await samples(http, name)
        if all(labels.get(k) == v for k, v in match.items())
    )


async def keeps_audio(clients: list[ClientPeer], seconds: float = 1.5) -> bool:
    before = [len(c.received) for c in clients]
    await asyncio.sleep(seconds)
    return all(
        len(c.received) - b > AUDIO_1S * (seconds - 0.5)
        for c, b in zip(clients, before, strict=True)
    )


async def close_all(clients: list[ClientPeer]) -> None:
    await asyncio.gather(*(c.close() for c in clients))


async def test_a_killed_worker_ends_only_its_calls_and_is_replaced(
    tmp_path: Path, short_consent_timers: None
) -> None:
    async with machine(tmp_path) as (_, http):
        pids = await worker_pids(http)
        assert sorted(pids) == ["0", "1"] and pids["0"] != pids["1"]
        clients: list[ClientPeer] = []
        try:
            for _ in range(4):
                clients.append(await start_call(http))
            # Least-loaded placement alternates between the two workers.
            assert sorted(worker_of(c) for c in clients) == ["0", "0", "1", "1"]
            assert await total(http, "voice_relay_sessions_active") == 4
            per_worker = dict(
                (labels["worker"], value)
                for labels, value in await samples(http, "voice_relay_worker_sessions")
            )
            assert per_worker == {"0": 2, "1": 2}
            assert await total(http, "voice_relay_worker_cpu_seconds_total") > 0

            doomed = [c for c in clients if worker_of(c) == "0"]
            survivors = [c for c in clients if worker_of(c) == "1"]
            os.kill(pids["0"], signal.SIGKILL)

            # The killed worker's peers see their connection end (consent freshness fails).
            await wait_until(
                lambda: all(c.pc.connectionState in ("failed", "closed") for c in doomed),
                timeout_s=15,
            )
            assert await keeps_audio(survivors)
            assert all(c.pc.connectionState == "connected" for c in survivors)

            # The front freed their places and started a replacement on the same slot.
            assert await total(http, "voice_relay_sessions_active") == 2
            assert await total(http, "voice_relay_sessions_ended_total", reason="worker_lost") == 2
            new_pid = await replaced(http, "0", pids["0"], timeout_s=10)
            assert await worker_pids(http) == {"0": new_pid, "1": pids["1"]}

            # The replacement, now the least loaded, takes the new calls.
            fresh = [await start_call(http), await start_call(http)]
            clients += fresh
            assert [worker_of(c) for c in fresh] == ["0", "0"]
            assert await keeps_audio(fresh + survivors)
            assert (await http.delete(f"/api/sessions/{fresh[0].session_id}")).status_code == 204
            await wait_until(lambda: fresh[0].events_of("ended"), timeout_s=5)
            assert fresh[0].events_of("ended")[0]["reason"] == "hangup"
        finally:
            await close_all(clients)


async def replaced(http: httpx.AsyncClient, worker: str, old_pid: int, timeout_s: float) -> int:
    """The pid of the worker that took over slot `worker` from `old_pid`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        pid = (await worker_pids(http)).get(worker)
        if pid is not None and pid != old_pid:
            return pid
        await asyncio.sleep(0.1)
    raise AssertionError(f"worker {worker} was not replaced within {timeout_s} s")


async def test_a_hung_worker_is_killed_and_replaced(tmp_path: Path) -> None:
    async with machine(tmp_path) as (_, http):
        pids = await worker_pids(http)
        clients: list[ClientPeer] = []
        try:
            clients = [await start_call(http), await start_call(http)]
            healthy = next(c for c in clients if worker_of(c) == "0")
            os.kill(pids["1"], signal.SIGSTOP)  # alive, but its loop never runs again
            new_pid = await replaced(http, "1", pids["1"], timeout_s=20)
            with pytest.raises(ProcessLookupError):  # killed (and reaped), not left stopped
                os.kill(pids["1"], 0)
            assert await total(http, "voice_relay_sessions_ended_total", reason="worker_lost") == 1
            assert await keeps_audio([healthy])
            assert (await worker_pids(http)) == {"0": pids["0"], "1": new_pid}
        finally:
            await close_all(clients)


async def test_admission_counts_the_whole_machine(tmp_path: Path) -> None:
    limits = {"VOICE_RELAY_MAX_SESSIONS": "2", "VOICE_RELAY_SESSIONS_PER_IP_PER_MINUTE": "3"}
    async with machine(tmp_path, VOICE_RELAY_ADMIN_TOKEN=ADMIN, **limits) as (_, http):
        clients: list[ClientPeer] = []
        try:
            clients = [await start_call(http), await start_call(http)]
            assert sorted(worker_of(c) for c in clients) == ["0", "1"]
            # The front's session list has both workers' calls, and the machine's load.
            listed = await http.get(
                "/api/admin/sessions", headers={"authorization": f"Bearer {ADMIN}"}
            )
            assert {s["id"] for s in listed.json()["sessions"]} == {c.session_id for c in clients}
            (instance,) = listed.json()["instances"]
            assert (instance["active"], instance["max_sessions"]) == (2, 2)
            full = await post_offer(http)
            assert full.status_code == 503
            assert full.json()["error"]["code"] == "at_capacity"
            assert int(full.headers["Retry-After"]) > 0
            assert (await http.get("/readyz")).json()["error"]["code"] == "at_capacity"

            # A hang-up on either worker frees a place of the machine.
            assert (await http.delete(f"/api/sessions/{clients[0].session_id}")).status_code == 204
            await wait_until(lambda: clients[0].events_of("ended"), timeout_s=5)
            for _ in range(100):
                if (await http.get("/readyz")).status_code == 200:
                    break
                await asyncio.sleep(0.05)
            clients.append(await start_call(http))  # the third from this address
            assert (await http.delete(f"/api/sessions/{clients[1].session_id}")).status_code == 204
            # The refused offer gave its count back: the rate is spent only now, at the fourth.
            limited = await post_offer(http)
            assert limited.status_code == 429
            assert limited.json()["error"]["code"] == "rate_limited"
            missing = await http.delete("/api/sessions/0-nosuchsession")
            assert missing.status_code == 404
        finally:
            await close_all(clients)


async def test_sigterm_drains_the_calls_of_every_worker(tmp_path: Path) -> None:
    async with machine(tmp_path, VOICE_RELAY_DRAIN_S="3") as (server, http):
        clients: list[ClientPeer] = []
        try:
            clients = [await start_call(http), await start_call(http)]
            assert sorted(worker_of(c) for c in clients) == ["0", "1"]
            loop = asyncio.get_running_loop()
            server.process.send_signal(signal.SIGTERM)
            signalled = loop.time()
            assert (await http.get("/readyz")).json()["error"]["code"] == "draining"
            refused = await post_offer(http)
            assert refused.status_code == 503 and refused.json()["error"]["code"] == "draining"
            assert await keeps_audio(clients)
            await wait_until(lambda: all(c.events_of("ended") for c in clients), timeout_s=15)
            assert [c.events_of("ended")[0]["reason"] for c in clients] == ["server_draining"] * 2
            assert loop.time() - signalled >= 2.5
            assert await asyncio.wait_for(server.process.wait(), 20) == 0
        finally:
            await close_all(clients)


async def test_workers_calls_are_in_the_cluster_directory_and_end_from_another_instance(
    tmp_path: Path,
) -> None:
    async with cluster(tmp_path, a__workers=2) as machines:
        a, b = machines.instances
        clients: list[ClientPeer] = []
        async with a.http() as via_a, b.http() as via_b:
            try:
                clients = [await start_call(via_a), await start_call(via_a)]
                assert sorted(worker_of(c) for c in clients) == ["0", "1"]
                listed = session_instances(await cluster_view(via_b))
                assert {c.session_id: "a" for c in clients}.items() <= listed.items()
                on_worker_1 = next(c for c in clients if worker_of(c) == "1")
                hangup = await via_b.delete(f"/api/sessions/{on_worker_1.session_id}")
                assert hangup.status_code == 204
                await wait_until(lambda: on_worker_1.events_of("ended"), timeout_s=5)
                assert on_worker_1.events_of("ended")[0]["reason"] == "hangup"
                remaining = session_instances(await cluster_view(via_b))
                assert on_worker_1.session_id not in remaining
            finally:
                await close_all(clients)


async def test_each_worker_binds_in_its_share_of_the_udp_ports(tmp_path: Path) -> None:
    first = 47000
    async with machine(tmp_path, VOICE_RELAY_UDP_PORTS=f"{first}-{first + 5}") as (_, http):
        clients: list[ClientPeer] = []
        try:
            for _ in range(2):
                client = ClientPeer(SpeechTrack(tone(60_000, hz=600.0)))
                body = await client.connect(http)
                clients.append(client)
                share = (
                    range(first, first + 3)
                    if worker_of(client) == "0"
                    else range(first + 3, first + 6)
                )
                ports = candidate_ports(str(body["sdp"]))
                assert ports and all(port in share for port in ports), (worker_of(client), ports)
            assert sorted(worker_of(c) for c in clients) == ["0", "1"]
            await wait_until(lambda: all(len(c.received) > AUDIO_1S // 4 for c in clients), 10)
        finally:
            await close_all(clients)


def test_the_port_range_splits_into_consecutive_shares() -> None:
    assert PortRange(40000, 40999).split(2) == [PortRange(40000, 40499), PortRange(40500, 40999)]
    assert PortRange(10, 14).split(3) == [PortRange(10, 11), PortRange(12, 13), PortRange(14, 14)]
    assert PortRange(10, 14).split(1) == [PortRange(10, 14)]
    with pytest.raises(ValueError, match="cannot be split"):
        PortRange(10, 11).split(3)


def test_workers_default_to_the_cores_and_must_be_positive() -> None:
    assert make_settings().resolved_workers == len(os.sched_getaffinity(0))
    assert make_settings(workers=3).resolved_workers == 3
    with pytest.raises(ValidationError, match="workers"):
        make_settings(workers=0)


def test_the_default_session_limit_is_per_worker() -> None:
    relayed = make_settings(model="echo")
    assert machine_settings(relayed, 1).resolved_max_sessions == DEFAULT_MAX_SESSIONS
    assert machine_settings(relayed, 3).resolved_max_sessions == 3 * DEFAULT_MAX_SESSIONS
    assert machine_settings(relayed, 3).relay_credential == relayed.relay_credential
    assert machine_settings(make_settings(max_sessions=7), 3).resolved_max_sessions == 7
    # The offline assistant's model runs in the front: its limit does not grow with workers.
    assistant = make_settings(model="assistant")
    assert machine_settings(assistant, 3).resolved_max_sessions == (
        DEFAULT_MAX_EMBEDDED_ASSISTANT_SESSIONS
    )


@pytest.mark.timeout(300)
def test_bench_workers_scenario_measures_one_worker_against_two(tmp_path: Path) -> None:
    # 5 sessions: more than the 4 a `voice-relay backend` admits by default (the bench lifts it).
    _, result = run_bench(
        tmp_path / "workers.json",
        "--scenario",
        "workers",
        "--quick",
        "--sessions",
        "5",
        "--hold",
        "2",
    )
    phases = {p["target"]: p for p in result["phases"]}
    assert set(phases) == {"relay-1w", "relay-2w"}
    for phase in phases.values():
        assert phase["sessions_ok"] == 5, phase["errors"]
        assert phase["latency_ms"]["count"] > 0
    one, two = phases["relay-1w"]["cpu"], phases["relay-2w"]["cpu"]
    # One process is its own front (sampled a moment apart); with two workers the media ran there.
    assert one["server_front_pct"] == pytest.approx(one["server_pct"], abs=2)
    assert 0 <= two["server_front_pct"] < two["server_pct"]
    rss = phases["relay-2w"]["memory"]["server_rss_mb"]["before"]
    assert rss > phases["relay-1w"]["memory"]["server_rss_mb"]["before"]  # three processes


async def test_a_worker_socket_answers_only_the_front_token() -> None:
    app = create_worker_app(make_settings(), token="front-secret")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://worker") as http:
        for headers in ({}, {"authorization": "Bearer guess"}):
            refused = await http.post("/close-all", json={"reason": "hangup"}, headers=headers)
            assert refused.status_code == 401
            assert refused.json()["error"]["code"] == "unauthorized"
            assert (await http.get("/events", headers=headers)).status_code == 401
