"""VOICE_RELAY_PUBLIC_IP: behind 1:1 NAT the answer advertises the public address.

- the answer's host candidates and `c=` lines carry the public address (one for all, or per
  private address), while the relay still binds the private one; nothing else is rewritten;
- through a real 1:1 NAT on loopback (nftables, in the test's loopback-only namespace: the
  relay on 127.0.0.2 is reachable only as 127.0.0.3, ports kept, and sends nothing the client
  did not ask for, as a cloud NAT in front and a home NAT behind) a real aiortc peer connects,
  and its packets went through the NAT. Without the rewrite it never connects.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
from collections.abc import Iterator

import pytest

from relay.public_address import PublicAddresses

from .conftest import live_app, wait_until
from .media import ClientPeer

pytestmark = pytest.mark.integration

PRIVATE, PUBLIC = "127.0.0.2", "127.0.0.3"
FORWARDED = "21300-21309"  # the cloud NAT forwards these UDP ports to the private address
NFT_TABLE = "voice_relay_test_nat"

ANSWER = "\r\n".join(
    [
        "v=0",
        "c=IN IP4 10.0.0.5",
        "m=audio 40000 UDP/TLS/RTP/SAVPF 96",
        "c=IN IP4 10.0.0.5",
        "a=candidate:1 1 udp 2130706431 10.0.0.5 40000 typ host",
        "a=candidate:2 1 udp 2130706431 10.0.1.5 40001 typ host",
        "a=candidate:3 1 udp 1694498815 198.51.100.1 40000 typ srflx raddr 10.0.0.5 rport 40000",
        "a=candidate:4 1 udp 2130706431 fd00::5 40002 typ host",
        "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
        "c=IN IP4 0.0.0.0",
        "",
    ]
)


def test_host_candidates_and_connection_lines_name_the_public_address() -> None:
    one = PublicAddresses.parse("203.0.113.7").rewrite(ANSWER)
    assert "10.0.0.5 40000 typ host" not in one and "203.0.113.7 40000 typ host" in one
    assert "203.0.113.7 40001 typ host" in one  # every IPv4 host address, ports kept
    assert "fd00::5 40002 typ host" in one  # another IP version keeps its address
    assert one.count("c=IN IP4 203.0.113.7") == 2
    assert "c=IN IP4 0.0.0.0" in one  # the no-candidate placeholder stays
    assert "198.51.100.1 40000 typ srflx raddr 10.0.0.5" in one  # STUN's own finding stays

    pairs = PublicAddresses.parse("10.0.1.5=198.51.100.2, fd00::5=2001:db8::5").rewrite(ANSWER)
    assert "10.0.0.5 40000 typ host" in pairs and "c=IN IP4 10.0.0.5" in pairs
    assert "198.51.100.2 40001 typ host" in pairs and "2001:db8::5 40002 typ host" in pairs


def test_bad_addresses_are_refused_in_plain_words() -> None:
    with pytest.raises(ValueError, match="'example.org' is not an IP address"):
        PublicAddresses.parse("example.org")
    with pytest.raises(ValueError, match="another IP version"):
        PublicAddresses.parse("10.0.0.5=2001:db8::5")
    with pytest.raises(ValueError, match="mapped twice"):
        PublicAddresses.parse("203.0.113.7,198.51.100.2")


@pytest.mark.parametrize("public_ip", ["198.51.100.9", "127.0.0.1=198.51.100.9"])
async def test_the_relays_answer_advertises_the_public_address(public_ip: str) -> None:
    client = ClientPeer()
    try:
        async with live_app(public_ip=public_ip) as live, live.http() as http:
            offer = await client.offer()
            response = await http.post("/api/sessions", json={"sdp": offer.sdp, "type": "offer"})
            assert response.status_code == 201, response.text
            session = live.registry.get(response.json()["session_id"])
            assert session.pc.sctp is not None
            bound = session.pc.sctp.transport.transport.iceGatherer.getLocalCandidates()
            # Not connected: the client would send to the documentation address.
            await http.delete(f"/api/sessions/{session.id}")
        sdp = response.json()["sdp"]
        hosts = {line.split()[4] for line in sdp.splitlines() if line.startswith("a=candidate:")}
        assert hosts == {"198.51.100.9"}
        assert "c=IN IP4 198.51.100.9" in sdp and "127.0.0.1" not in sdp
        assert [c.ip for c in bound] == ["127.0.0.1"]  # aioice still bound the private address
    finally:
        await client.close()


def loopback_only_namespace() -> bool:
    return [name for _, name in socket.if_nameindex()] == ["lo"]


def nft(*commands: str) -> str:
    return subprocess.run(["nft", *commands], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def one_to_one_nat() -> Iterator[None]:
    if os.geteuid() != 0 or shutil.which("nft") is None or not loopback_only_namespace():
        pytest.skip("needs root, nft and a loopback-only namespace (make test)")
    low, high = FORWARDED.split("-")
    ruleset = f"""
table ip {NFT_TABLE} {{
  chain nat_out {{
    type nat hook output priority -100;
    ip daddr {PUBLIC} udp dport {low}-{high} counter dnat to {PRIVATE}
  }}
  chain filter_out {{
    type filter hook output priority 0;
    ip daddr {PRIVATE} udp dport {low}-{high} ct status dnat accept
    ip daddr {PRIVATE} meta l4proto udp drop
    ip saddr {PRIVATE} udp sport {low}-{high} ct state new drop
  }}
}}
"""
    subprocess.run(["nft", "-f", "-"], input=ruleset, check=True, text=True)
    try:
        yield
    finally:
        nft("delete", "table", "ip", NFT_TABLE)


def forwarded_packets() -> int:
    chain = nft("list", "chain", "ip", NFT_TABLE, "nat_out")
    match = re.search(r"counter packets (\d+)", chain)
    assert match is not None, chain
    return int(match.group(1))


async def test_a_peer_connects_through_a_one_to_one_nat(one_to_one_nat: None) -> None:
    client = ClientPeer()
    try:
        async with (
            live_app(
                ice_addresses=[PRIVATE], udp_ports=FORWARDED, public_ip=f"{PRIVATE}={PUBLIC}"
            ) as live,
            live.http() as http,
        ):
            body = await client.connect(http)
            assert f"{PUBLIC} " in body["sdp"] and PRIVATE not in body["sdp"]
            await wait_until(lambda: client.pc.connectionState == "connected", timeout_s=15)
            await http.delete(f"/api/sessions/{client.session_id}")
        assert forwarded_packets() > 0  # the client reached the relay through the NAT only
    finally:
        await client.close()
