"""Admission control: beyond VOICE_RELAY_MAX_SESSIONS, `POST /api/sessions` answers 503.

- the refusal is HTTP 503 with `Retry-After` and `{"error": {"code": "at_capacity", ...}}`;
- sessions still negotiating count: concurrent offers never let max_sessions + 1 in;
- a place frees up once a session has closed, and the sessions already admitted keep working;
- a refusal at capacity does not use up the caller's per-address rate.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from .conftest import LiveServer, wait_until
from .media import ClientPeer

pytestmark = pytest.mark.integration


async def post_offer(http: httpx.AsyncClient, client: ClientPeer) -> httpx.Response:
    offer = await client.offer()
    return await http.post("/api/sessions", json={"sdp": offer.sdp, "type": offer.type})


@pytest.mark.settings(max_sessions=2)
async def test_admission_refuses_beyond_max_sessions_with_503(live_server: LiveServer) -> None:
    clients = [ClientPeer() for _ in range(4)]
    try:
        async with live_server.http() as http:
            await clients[0].connect(http)
            await clients[1].connect(http)
            refused = await post_offer(http, clients[2])
            assert refused.status_code == 503
            assert int(refused.headers["retry-after"]) > 0
            error = refused.json()["error"]
            assert error["code"] == "at_capacity"
            assert "try again" in error["message"]
            assert len(live_server.registry) == 2

            await wait_until(lambda: clients[0].pc.connectionState == "connected")
            assert (await http.delete(f"/api/sessions/{clients[0].session_id}")).status_code == 204
            await clients[3].connect(http)
            await wait_until(lambda: clients[3].pc.connectionState == "connected")
            assert clients[1].pc.connectionState == "connected"
            assert len(live_server.registry) == 2
    finally:
        await asyncio.gather(*(c.close() for c in clients))


@pytest.mark.settings(max_sessions=3)
async def test_admission_counts_sessions_still_negotiating(live_server: LiveServer) -> None:
    clients = [ClientPeer() for _ in range(7)]
    try:
        offers = await asyncio.gather(*(c.offer() for c in clients))
        async with live_server.http() as http:
            responses = await asyncio.gather(
                *(http.post("/api/sessions", json={"sdp": o.sdp, "type": o.type}) for o in offers)
            )
            statuses = sorted(r.status_code for r in responses)
            assert statuses == [201] * 3 + [503] * 4
            assert len(live_server.registry) == 3
            for response in responses:
                if response.status_code == 201:
                    await http.delete(f"/api/sessions/{response.json()['session_id']}")
        assert len(live_server.registry) == 0
    finally:
        await asyncio.gather(*(c.close() for c in clients))


@pytest.mark.settings(max_sessions=1)
async def test_admission_frees_the_place_when_the_peer_goes_away(live_server: LiveServer) -> None:
    first, refused, later = ClientPeer(), ClientPeer(), ClientPeer()
    try:
        async with live_server.http() as http:
            await first.connect(http)
            await wait_until(lambda: first.pc.connectionState == "connected")
            assert (await post_offer(http, refused)).status_code == 503
            await first.close()  # the peer hangs up without DELETE: the session ends by itself
            await wait_until(lambda: len(live_server.registry) == 0, timeout_s=10)
            await later.connect(http)
    finally:
        await asyncio.gather(first.close(), refused.close(), later.close())


@pytest.mark.settings(max_sessions=1, sessions_per_ip_per_minute=2)
async def test_refusals_at_capacity_do_not_count_against_the_address(
    live_server: LiveServer,
) -> None:
    clients = [ClientPeer() for _ in range(5)]
    try:
        async with live_server.http() as http:
            await clients[0].connect(http)  # the address's first session
            for client in clients[1:4]:
                assert (await post_offer(http, client)).status_code == 503
            await http.delete(f"/api/sessions/{clients[0].session_id}")
            await wait_until(lambda: len(live_server.registry) == 0)
            await clients[4].connect(http)  # its second: admitted, not 429
            assert len(live_server.registry) == 1
    finally:
        await asyncio.gather(*(c.close() for c in clients))
