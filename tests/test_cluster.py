"""Many instances on one Redis, behind a real nginx (tests/cluster.py): link concurrency as
leases that a SIGKILLed instance frees within the TTL, quotas and revocations counted once, the
session directory (admin list, `voice-relay sessions`, DELETE from any instance), a full or
draining instance's 503 retried on another, and a lost Redis refusing only new calls.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from web.cli import main
from web.cluster.leases import RedisLeases
from web.links.redis_store import redis_client
from web.settings import Settings

from .cluster import (
    ADMIN,
    ADMIN_TOKEN,
    HAVE_CLUSTER_TOOLS,
    SECRET_KEY,
    RedisServer,
    audio_flows,
    cluster,
    cluster_view,
    create_link,
    post_offer,
    session_instances,
    start_call,
)
from .conftest import live_app, wait_until
from .media import ClientPeer

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not HAVE_CLUSTER_TOOLS, reason="needs redis-server and nginx (Debian packages)"
    ),
]

LEASE_TTL_S = 3.0  # renewed every second; production's default is 15 s


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def refusals(http: httpx.AsyncClient, reason: str) -> float:
    """`voice_relay_admission_refusals_total{reason=...}` of one instance (we are on loopback)."""
    text = (await http.get("/metrics")).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if (
                sample.name == "voice_relay_admission_refusals_total"
                and sample.labels.get("reason") == reason
            ):
                return sample.value
    return 0.0


def error_code(response: httpx.Response) -> str:
    code: str = response.json()["error"]["code"]
    return code


async def test_leases_are_taken_atomically_renewed_and_expire(redis_server: RedisServer) -> None:
    client = redis_client(redis_server.url)
    try:
        leases = RedisLeases(client, ttl_s=1.0)
        others = RedisLeases(client, ttl_s=1.0)  # another instance on the same Redis
        mine = await asyncio.gather(*(leases.take("shop", 3) for _ in range(10)))
        theirs = await asyncio.gather(*(others.take("shop", 3) for _ in range(10)))
        held = [(leases, h) for h in mine if h] + [(others, h) for h in theirs if h]
        assert len(held) == 3
        assert leases.active("shop") + others.active("shop") == 3
        owner, holder = held[0]
        await owner.give_back("shop", holder)
        assert await leases.take("shop", 3) is not None  # the freed place
        assert await others.take("shop", 3) is None
        for _ in range(3):  # renewed past the TTL, the places stay taken
            await asyncio.sleep(0.5)
            await leases.renew()
            await others.renew()
        assert await others.take("shop", 3) is None
        await asyncio.sleep(1.2)  # nobody renews: like instances killed, they expire
        assert await others.take("shop", 3) is not None
    finally:
        await client.aclose()


def test_redis_without_a_shared_secret_key_is_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ValidationError, match="VOICE_RELAY_SECRET_KEY"):
        Settings(_env_file=None, redis_url="redis://127.0.0.1:1/0")  # type: ignore[call-arg]
    monkeypatch.setenv("VOICE_RELAY_REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.delenv("VOICE_RELAY_SECRET_KEY", raising=False)
    assert main(["serve"]) == 2
    assert "VOICE_RELAY_SECRET_KEY" in capsys.readouterr().err
    monkeypatch.setenv("VOICE_RELAY_SECRET_KEY", SECRET_KEY)
    assert Settings(_env_file=None).redis_url is not None  # type: ignore[call-arg]


async def test_a_links_place_is_held_across_instances_and_freed_after_sigkill(
    tmp_path: Path,
) -> None:
    async with cluster(tmp_path, lease_ttl_s=LEASE_TTL_S, sessions_per_ip_per_minute=1000) as c:
        a, b = c.instances
        async with a.http() as http_a, b.http() as http_b:
            await create_link(http_b, "solo", limits={"max_concurrent": 1})
            call = await start_call(http_a, link="solo")
            try:
                busy = await post_offer(http_b, link="solo")
                assert busy.status_code == 429, busy.text
                assert "busy" in busy.json()["error"]["message"]
                assert int(busy.headers["retry-after"]) > 0

                loop = asyncio.get_running_loop()
                a.signal(signal.SIGKILL)
                await a.process.wait()
                killed = loop.time()
                # The kill itself frees nothing: the lease runs out, renewed by nobody.
                assert (await post_offer(http_b, link="solo")).status_code == 429
                # Its call is still listed until then, but nobody runs it: a DELETE says so.
                assert call.session_id in session_instances(await cluster_view(http_b))
                orphan = await http_b.delete(f"/api/sessions/{call.session_id}")
                assert orphan.status_code == 404, orphan.text
                assert call.session_id not in session_instances(await cluster_view(http_b))
                refused_after_s = []  # when each refused attempt began, after the kill
                while True:
                    begun = loop.time()
                    response = await post_offer(http_b, link="solo")
                    if response.status_code == 201:
                        break
                    assert response.status_code == 429, response.text
                    refused_after_s.append(begun - killed)
                    assert loop.time() - killed < LEASE_TTL_S + 10, "the lease never expired"
                    await asyncio.sleep(0.1)
                # It expired by the last renewal + TTL, before `killed` + TTL: no attempt begun
                # after that may have been refused.
                assert max(refused_after_s, default=0.0) < LEASE_TTL_S
                # A's directory entries went with its heartbeat.
                view = await cluster_view(http_b)
                assert [i["id"] for i in view["instances"]] == ["b"]
            finally:
                await call.close()


async def test_quotas_rate_and_revocation_are_shared_behind_the_balancer(tmp_path: Path) -> None:
    async with cluster(tmp_path, lease_ttl_s=LEASE_TTL_S, sessions_per_ip_per_minute=4) as c:
        a, b = c.instances
        async with c.nginx.http() as lb, a.http() as http_a, b.http() as http_b:
            await create_link(http_a, "hourly", limits={"sessions_per_hour": 2})
            landed = []
            for _ in range(2):
                response = await post_offer(lb, link="hourly")
                assert response.status_code == 201, response.text
                landed.append(response.json()["session_id"])
            where = session_instances(await cluster_view(http_a))
            assert {where[session_id] for session_id in landed} == {"a", "b"}  # round robin
            for http in (http_a, http_b):
                refused = await post_offer(http, link="hourly")
                assert refused.status_code == 429, refused.text
                assert "hour" in refused.json()["error"]["message"]
            # Refused for the link's sake, those used none of the address's 4 a minute.
            for _ in range(2):
                assert (await post_offer(lb)).status_code == 201
            for http in (http_a, http_b):
                refused = await post_offer(http)
                assert refused.status_code == 429, refused.text
                assert "address" in refused.json()["error"]["message"]

            await create_link(http_b, "gone")
            revoked = await http_b.delete("/api/admin/links/gone", headers=ADMIN)
            assert revoked.status_code == 200, revoked.text
            refused = await post_offer(http_a, link="gone")
            assert refused.status_code == 410 and error_code(refused) == "link_revoked"


async def test_sessions_are_listed_and_hung_up_from_any_instance(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async with cluster(tmp_path, lease_ttl_s=LEASE_TTL_S) as c:
        a, b = c.instances
        async with a.http() as http_a, b.http() as http_b:
            call_a = await start_call(http_a)
            call_b = await start_call(http_b)
            try:
                expected = {call_a.session_id: "a", call_b.session_id: "b"}
                # The CLI reads the directory from Redis, configured as a deployment is.
                for key in ("VOICE_RELAY_REDIS_URL", "VOICE_RELAY_SECRET_KEY"):
                    monkeypatch.setenv(key, a.env[key])
                code = await asyncio.to_thread(main, ["sessions", "--json"])
                out = capsys.readouterr().out
                assert code == 0, out
                listed = json.loads(out)
                assert session_instances(listed) == expected
                load = {i["id"]: (i["active"], i["draining"]) for i in listed["instances"]}
                assert load == {"a": (1, False), "b": (1, False)}
                entry = next(e for e in listed["sessions"] if e["id"] == call_a.session_id)
                assert (entry["backend"], entry["model"], entry["link"]) == (
                    "local", "loopback", None,
                )  # fmt: skip
                assert session_instances(await cluster_view(http_b)) == expected

                hangup = await http_b.delete(f"/api/sessions/{call_a.session_id}")
                assert hangup.status_code == 204, hangup.text
                await wait_until(lambda: call_a.events_of("ended"), timeout_s=5)
                assert [e["reason"] for e in call_a.events_of("ended")] == ["hangup"]
                after = session_instances(await cluster_view(http_a))
                assert after == {call_b.session_id: "b"}
                assert await audio_flows(call_b)

                unknown = await http_b.delete("/api/sessions/no-such-session")
                assert unknown.status_code == 404
                assert error_code(unknown) == "session_not_found"
            finally:
                await call_a.close()
                await call_b.close()


async def test_a_full_instances_503_is_retried_on_another(tmp_path: Path) -> None:
    async with cluster(tmp_path, lease_ttl_s=LEASE_TTL_S, a__max_sessions=1) as c:
        a, b = c.instances
        async with c.nginx.http() as lb, a.http() as http_a:
            call = await start_call(http_a)
            try:
                landed = []
                for _ in range(3):  # round robin: at least one is offered to the full A first
                    response = await post_offer(lb)
                    assert response.status_code == 201, response.text
                    landed.append(response.json()["session_id"])
                where = session_instances(await cluster_view(http_a))
                assert [where[session_id] for session_id in landed] == ["b", "b", "b"]
                assert await refusals(http_a, "at_capacity") >= 1
                assert await audio_flows(call)
            finally:
                await call.close()


async def test_a_draining_instance_keeps_its_call_while_new_ones_land_elsewhere(
    tmp_path: Path,
) -> None:
    async with cluster(tmp_path, lease_ttl_s=LEASE_TTL_S, drain_s=60) as c:
        a, b = c.instances
        async with c.nginx.http() as lb, a.http() as http_a:
            held = await start_call(http_a)
            new_calls: list[ClientPeer] = []
            try:
                a.signal(signal.SIGTERM)
                for _ in range(100):
                    if (await http_a.get("/readyz")).status_code == 503:
                        break
                    await asyncio.sleep(0.05)
                for _ in range(3):
                    new_calls.append(await start_call(lb))
                view = await cluster_view(http_a)
                where = session_instances(view)
                assert [where[call.session_id] for call in new_calls] == ["b", "b", "b"]
                assert where[held.session_id] == "a"
                assert await refusals(http_a, "draining") >= 1  # nginx tried A, then B
                assert await audio_flows(held)
                assert held.events_of("ended") == []
                assert a.process.returncode is None
                draining = {i["id"]: i["draining"] for i in view["instances"]}
                for _ in range(int(LEASE_TTL_S / 0.1)):  # the next heartbeat says so
                    if draining.get("a"):
                        break
                    await asyncio.sleep(0.1)
                    view = await cluster_view(http_a)
                    draining = {i["id"]: i["draining"] for i in view["instances"]}
                assert draining == {"a": True, "b": False}
            finally:
                for call in [held, *new_calls]:
                    await call.close()


async def test_a_lost_redis_refuses_new_calls_and_spares_the_running_one(tmp_path: Path) -> None:
    async with cluster(tmp_path, lease_ttl_s=LEASE_TTL_S) as c:
        async with c.nginx.http() as lb:
            call = await start_call(lb)
            try:
                c.redis.stop()
                for _ in range(2):  # no instance is taken out: each time both answer 503
                    refused = await post_offer(lb)
                    assert refused.status_code == 503, refused.text
                    assert error_code(refused) == "shared_state_unavailable"
                    assert int(refused.headers["retry-after"]) > 0
                assert await audio_flows(call, 2.0)
                assert call.events_of("ended") == []

                # Redis back, empty: the heartbeats list the call again and calls start again.
                c.redis.start()
                async with c.instances[0].http() as http_a:
                    for _ in range(int(LEASE_TTL_S / 0.1)):
                        listed = session_instances(await cluster_view(http_a))
                        if call.session_id in listed:
                            break
                        await asyncio.sleep(0.1)
                assert call.session_id in listed
                assert (await post_offer(lb)).status_code == 201
                # Hang-ups pass between instances again (each subscribed anew).
                other = next(i for i in c.instances if i.name != listed[call.session_id])
                async with other.http() as http:
                    hangup = await http.delete(f"/api/sessions/{call.session_id}")
                assert hangup.status_code == 204, hangup.text
                await wait_until(lambda: call.events_of("ended"), timeout_s=5)
            finally:
                await call.close()


async def test_sessions_cli_asks_the_local_server_without_redis(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async with live_app(admin_token=ADMIN_TOKEN) as live:
        client = ClientPeer()
        async with live.http() as http:
            await client.connect(http)
        try:
            monkeypatch.setenv("VOICE_RELAY_ADMIN_TOKEN", ADMIN_TOKEN)
            monkeypatch.delenv("VOICE_RELAY_REDIS_URL", raising=False)
            code = await asyncio.to_thread(main, ["sessions", "--url", live.url])
            out = capsys.readouterr().out
            assert code == 0
            assert client.session_id is not None and client.session_id in out
            assert "1/" in out  # this instance's active/max
            monkeypatch.delenv("VOICE_RELAY_ADMIN_TOKEN")
            code = await asyncio.to_thread(main, ["sessions", "--url", live.url])
            assert code == 1
            assert "VOICE_RELAY_ADMIN_TOKEN" in capsys.readouterr().err
        finally:
            await client.close()
