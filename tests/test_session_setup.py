"""Session set-up: a call that never connects, or whose backend refuses, frees everything.

- an offer whose peer never sends a packet after the answer, and one whose peer completes ICE
  but never DTLS, end `connect_timeout` within VOICE_RELAY_CONNECT_TIMEOUT_S, and the slot
  they held (VOICE_RELAY_MAX_SESSIONS=1 here) takes the next call;
- a call that connects in time is not ended by that limit;
- offers refused at once by the backend (a closed port) leave the process's descriptors and
  tasks as they were, with no task destroyed while pending.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import re
import secrets
import socket
from typing import Any

import httpx
import pytest
from aioice import stun

from .conftest import LiveServer, live_app, wait_until
from .media import LOOPBACK, ClientPeer
from .test_teardown import leftovers

pytestmark = pytest.mark.integration

CONNECT_TIMEOUT_S = 2.0


def ice_credentials(sdp: str) -> tuple[str, str]:
    ufrag = re.search(r"^a=ice-ufrag:(\S+)", sdp, re.M)
    pwd = re.search(r"^a=ice-pwd:(\S+)", sdp, re.M)
    assert ufrag and pwd
    return ufrag[1], pwd[1]


class StunOnlyPeer(asyncio.DatagramProtocol):
    """The far end of an offer, on one UDP socket: silent, or (`answer_ice`) a controlling ICE
    agent that answers and nominates (aioice's STUN messages) but never speaks DTLS."""

    def __init__(self, answer_ice: bool) -> None:
        self.answer_ice = answer_ice
        self.ufrag, self.pwd = "", ""
        self.relay: tuple[str, str] | None = None  # the answer's ICE ufrag and password
        self.relay_addr: tuple[str, int] | None = None
        self.nominated = asyncio.Event()
        self.dtls_seen = asyncio.Event()
        self.transport: asyncio.DatagramTransport | None = None

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if 20 <= data[0] <= 63:  # RFC 7983: a DTLS record, ICE has completed
            self.dtls_seen.set()
            return
        if not self.answer_ice or data[0] > 3:
            return
        message = stun.parse_message(data)
        if message.message_class == stun.Class.RESPONSE:
            self.nominated.set()
        elif message.message_class == stun.Class.REQUEST:
            self.relay_addr = addr
            response = stun.Message(
                stun.Method.BINDING, stun.Class.RESPONSE, message.transaction_id
            )
            response.attributes["XOR-MAPPED-ADDRESS"] = addr
            response.add_message_integrity(self.pwd.encode())
            response.add_fingerprint()
            self._send(bytes(response), addr)

    def nominate(self) -> None:
        """One USE-CANDIDATE check to the relay (it is the controlled agent)."""
        if self.relay is None or self.relay_addr is None:
            return
        request = stun.Message(stun.Method.BINDING, stun.Class.REQUEST)
        request.attributes["USERNAME"] = f"{self.relay[0]}:{self.ufrag}"
        request.attributes["PRIORITY"] = 1853824767
        request.attributes["ICE-CONTROLLING"] = secrets.randbits(64)
        request.attributes["USE-CANDIDATE"] = None
        request.add_message_integrity(self.relay[1].encode())
        request.add_fingerprint()
        self._send(bytes(request), self.relay_addr)

    async def nominate_until_answered(self) -> None:
        while not self.nominated.is_set():  # STUN over UDP: retry until answered
            self.nominate()
            await asyncio.sleep(0.05)

    def _send(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        self.transport.sendto(data, addr)

    async def post_offer(self, http: httpx.AsyncClient) -> str:
        """Post a real aiortc offer whose only candidate is this socket; the session id."""
        assert self.transport is not None
        port = self.transport.get_extra_info("sockname")[1]
        client = ClientPeer()
        offer = (await client.offer()).sdp
        await client.close()
        self.ufrag, self.pwd = ice_credentials(offer)
        candidate = f"a=candidate:1 1 udp 2130706431 {LOOPBACK} {port} typ host"
        offer = re.sub(r"^a=candidate:.*$", candidate, offer, flags=re.M)
        response = await http.post("/api/sessions", json={"sdp": offer, "type": "offer"})
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        self.relay = ice_credentials(body["sdp"])
        return str(body["session_id"])


async def stun_only_peer(answer_ice: bool) -> StunOnlyPeer:
    loop = asyncio.get_running_loop()
    transport, peer = await loop.create_datagram_endpoint(
        lambda: StunOnlyPeer(answer_ice), local_addr=(LOOPBACK, 0)
    )
    peer.transport = transport
    return peer


async def assert_slot_taken_then_freed(live: LiveServer, session_id: str) -> None:
    """The call holds the only slot, ends `connect_timeout` in time, and the next one gets in."""
    session = live.registry.get(session_id)
    caller = ClientPeer()
    async with live.http() as http:
        busy = await http.post("/api/sessions", json={"sdp": (await caller.offer()).sdp})
        assert busy.status_code == 503, busy.text
        await wait_until(lambda: session_id not in live.registry, timeout_s=CONNECT_TIMEOUT_S + 3)
        assert session.reason == "connect_timeout"
        await wait_until(lambda: not leftovers(session))
        await caller.close()
        caller = ClientPeer()
        await caller.connect(http)
        await wait_until(lambda: caller.pc.connectionState == "connected", timeout_s=10)
    await caller.close()


@pytest.mark.settings(max_sessions=1, connect_timeout_s=CONNECT_TIMEOUT_S)
async def test_offer_whose_peer_never_answers_frees_its_slot(live_server: LiveServer) -> None:
    peer = await stun_only_peer(answer_ice=False)
    try:
        async with live_server.http() as http:
            session_id = await peer.post_offer(http)
        await assert_slot_taken_then_freed(live_server, session_id)
    finally:
        assert peer.transport is not None
        peer.transport.close()


@pytest.mark.settings(max_sessions=1, connect_timeout_s=CONNECT_TIMEOUT_S)
async def test_peer_that_completes_ice_but_never_dtls_frees_its_slot(
    live_server: LiveServer,
) -> None:
    peer = await stun_only_peer(answer_ice=True)
    try:
        async with live_server.http() as http:
            session_id = await peer.post_offer(http)
        session = live_server.registry.get(session_id)
        await asyncio.wait_for(peer.nominate_until_answered(), CONNECT_TIMEOUT_S)
        await asyncio.wait_for(peer.dtls_seen.wait(), CONNECT_TIMEOUT_S)
        assert session.pc.iceConnectionState == "completed"
        assert session.pc.connectionState == "connecting"
        await assert_slot_taken_then_freed(live_server, session_id)
    finally:
        assert peer.transport is not None
        peer.transport.close()


@pytest.mark.settings(connect_timeout_s=CONNECT_TIMEOUT_S)
async def test_a_connected_call_outlives_the_connect_timeout(live_server: LiveServer) -> None:
    client = ClientPeer()
    async with live_server.http() as http:
        await client.connect(http)
    await wait_until(lambda: client.pc.connectionState == "connected", timeout_s=10)
    await asyncio.sleep(CONNECT_TIMEOUT_S * 2)
    assert client.session_id in live_server.registry
    assert client.pc.connectionState == "connected"
    await client.close()


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_offers_the_backend_refuses_leave_nothing_behind(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as closed:  # a port nothing listens on: the backend refuses at once
        closed.bind((LOOPBACK, 0))
        backend_url = f"ws://{LOOPBACK}:{closed.getsockname()[1]}/v1/realtime"
    caplog.set_level(logging.WARNING)
    async with (
        live_app(backend_url=backend_url, sessions_per_ip_per_minute=100) as live,
        live.http() as http,
    ):
        client = ClientPeer()
        offer = {"sdp": (await client.offer()).sdp, "type": "offer"}
        await client.close()

        async def refused(n: int) -> None:
            for _ in range(n):
                response = await http.post("/api/sessions", json=offer)
                assert response.status_code == 502, response.text
                assert response.json()["error"]["code"] == "backend_unavailable"
            await wait_until(lambda: len(live.registry) == 0)
            await asyncio.sleep(0.5)  # aiortc's own tasks wind down
            gc.collect()

        await refused(2)  # the HTTP connection, the loop's first sockets
        descriptors, tasks = open_descriptors(), len(asyncio.all_tasks())
        await refused(20)
        assert open_descriptors() <= descriptors
        assert len(asyncio.all_tasks()) <= tasks
    assert not [r for r in caplog.records if "destroyed but it is pending" in r.getMessage()]
