"""VOICE_RELAY_UDP_PORTS: every host candidate of the relay binds inside the range.

- real aiortc peers on loopback connect, and each of the relay's host candidates has a port of
  the range, while the test's own client peer (same process, same loop) binds outside it;
- a full range refuses the next call with 503 and a message before aioice could answer without
  candidates, and the ports come back once a call ends;
- a port another socket holds is skipped, not counted as a failure;
- aioice still binds host candidates through the seam relay/upstream.py wraps.
"""

from __future__ import annotations

import asyncio
import inspect
import socket

import aioice.ice
import pytest
from aiortc import RTCSessionDescription

from relay.udp_ports import PortRange, UdpPortPool

from .conftest import LiveServer, live_app, wait_until
from .media import ClientPeer

pytestmark = pytest.mark.integration

# Below Linux's ephemeral range (32768-60999), so no port-0 bind lands here by chance.
RANGE = PortRange(21000, 21009)
SMALL = PortRange(21100, 21101)


def candidate_ports(sdp: str) -> list[int]:
    # a=candidate:FOUNDATION COMPONENT TRANSPORT PRIORITY ADDRESS PORT typ host
    parts = [line.split() for line in sdp.splitlines() if line.startswith("a=candidate:")]
    return [int(p[5]) for p in parts]


async def start_call(live: LiveServer) -> tuple[ClientPeer, dict[str, object]]:
    client = ClientPeer()
    offer = await client.offer()
    async with live.http() as http:
        response = await http.post("/api/sessions", json={"sdp": offer.sdp, "type": "offer"})
    body: dict[str, object] = {"status": response.status_code, **response.json()}
    body["headers"] = dict(response.headers)
    if response.status_code == 201:
        client.session_id = str(body["session_id"])
        await client.pc.setRemoteDescription(RTCSessionDescription(str(body["sdp"]), "answer"))
    return client, body


async def test_every_host_candidate_binds_in_the_range_and_calls_connect() -> None:
    async with live_app(udp_ports=str(RANGE)) as live:
        calls = await asyncio.gather(start_call(live), start_call(live), start_call(live))
        try:
            for client, body in calls:
                assert body["status"] == 201, body
                ports = candidate_ports(str(body["sdp"]))
                assert ports and all(RANGE.first <= p <= RANGE.last for p in ports), ports
                # The client peer gathered in the same loop, outside the relay's connections.
                client_ports = candidate_ports(client.pc.localDescription.sdp)
                assert client_ports and not any(
                    RANGE.first <= p <= RANGE.last for p in client_ports
                )
            for client, _ in calls:
                await wait_until(lambda c=client: c.pc.connectionState == "connected", 10)
            bound = {p for _, body in calls for p in candidate_ports(str(body["sdp"]))}
            assert len(bound) == 3  # one port per call (127.0.0.1 only, BUNDLE)
        finally:
            await asyncio.gather(*(client.close() for client, _ in calls))


async def test_a_full_range_refuses_the_call_with_503_until_a_port_is_free() -> None:
    async with live_app(udp_ports=str(SMALL)) as live:
        first, one = await start_call(live)
        second, two = await start_call(live)
        third, refused = await start_call(live)
        try:
            assert one["status"] == two["status"] == 201
            assert refused["status"] == 503, refused
            error = refused["error"]
            assert isinstance(error, dict) and error["code"] == "at_capacity"
            assert "no UDP ports left" in error["message"]
            assert f"VOICE_RELAY_UDP_PORTS={SMALL}" in error["message"]
            assert isinstance(refused["headers"], dict) and "retry-after" in refused["headers"]
            assert len(live.registry) == 2
            async with live.http() as http:
                await http.delete(f"/api/sessions/{first.session_id}")
            await wait_until(lambda: len(live.registry) == 1)
            fourth, again = await start_call(live)
            try:
                assert again["status"] == 201, again
                assert candidate_ports(str(again["sdp"]))[0] in (SMALL.first, SMALL.last)
            finally:
                await fourth.close()
        finally:
            await asyncio.gather(first.close(), second.close(), third.close())


def test_a_port_held_elsewhere_is_skipped() -> None:
    pool = UdpPortPool(PortRange(21200, 21202))
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    other.bind(("127.0.0.1", 21200))
    try:
        reservation = pool.reserve(2)
        first, second = reservation.bind("127.0.0.1"), reservation.bind("127.0.0.1")
        assert [first.getsockname()[1], second.getsockname()[1]] == [21201, 21202]
        assert pool.available() == 1  # counted free: another process's port is not ours
        with pytest.raises(OSError, match="no free UDP port left in 21200-21202"):
            reservation.bind("127.0.0.1")  # beyond its reservation, and 21200 is taken
        first.close()
        assert pool.available() == 2
    finally:
        for sock in (other, first, second):
            sock.close()


def test_aioice_still_binds_host_candidates_where_relay_upstream_expects() -> None:
    source = inspect.getsource(aioice.ice.Connection.get_component_candidates)
    assert "await loop.create_datagram_endpoint(" in source
    assert "lambda: StunProtocol(self), local_addr=(address, 0)" in source
    assert "except OSError as exc:" in source  # a refused bind skips the address
