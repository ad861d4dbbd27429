"""relay.peer: host-candidate addresses are per peer connection, not per process.

- two peer connections in one process, gathering at the same time, each offer candidates on
  their own addresses only;
- one without addresses gathers as aioice does (every interface but loopback), even while
  another gathers on loopback.
"""

from __future__ import annotations

import asyncio

import pytest
from aiortc import RTCPeerConnection

from relay.peer import create_peer_connection

pytestmark = pytest.mark.integration


def host_candidates(pc: RTCPeerConnection) -> set[str]:
    description = pc.localDescription
    assert description is not None
    lines = [line.split() for line in description.sdp.splitlines()]
    return {p[4] for p in lines if p and p[0].startswith("a=candidate:") and p[7] == "host"}


async def offer(pc: RTCPeerConnection) -> None:
    pc.createDataChannel("events")
    await pc.setLocalDescription(await pc.createOffer())


async def test_two_peer_connections_gather_on_their_own_addresses() -> None:
    first = create_peer_connection([], host_addresses=["127.0.0.1"])
    second = create_peer_connection([], host_addresses=["127.0.0.2"])
    default = create_peer_connection([])
    try:
        await asyncio.gather(offer(first), offer(second), offer(default))
        assert host_candidates(first) == {"127.0.0.1"}
        assert host_candidates(second) == {"127.0.0.2"}
        assert not any(a.startswith("127.") for a in host_candidates(default))
    finally:
        await asyncio.gather(first.close(), second.close(), default.close())
