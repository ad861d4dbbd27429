"""RTCPeerConnection set-up: ICE servers, host-candidate addresses, offer checks, Opus only."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import aioice.ice
from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamTrack

from .errors import SignallingError

MAX_SDP_BYTES = 32 * 1024
_aioice_host_addresses = aioice.ice.get_host_addresses


@dataclass(frozen=True)
class IceServerConfig:
    urls: str | list[str]
    username: str | None = None
    credential: str | None = None


def use_host_addresses(addresses: Sequence[str]) -> None:
    """Gather host candidates only on `addresses` (all interfaces when empty).

    aioice has no option for this and always leaves out loopback; its module-level lookup is
    the seam (tests and loopback-only deployments use 127.0.0.1). Process-wide by nature.
    """
    if not addresses:
        aioice.ice.get_host_addresses = _aioice_host_addresses
        return
    chosen = list(addresses)

    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in chosen if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    aioice.ice.get_host_addresses = get_host_addresses


def add_opus_audio(pc: RTCPeerConnection, track: MediaStreamTrack) -> RTCRtpTransceiver:
    """The audio transceiver: sends `track`, receives the peer's, and negotiates Opus only,
    whatever the offer's codec order (the playout sends ready Opus packets and the uplink
    decodes Opus). Call before setRemoteDescription, which then takes this transceiver."""
    transceiver = pc.addTransceiver(track, direction="sendrecv")
    opus = [c for c in RTCRtpSender.getCapabilities("audio").codecs if c.name.lower() == "opus"]
    transceiver.setCodecPreferences(opus)
    return transceiver


def create_peer_connection(ice_servers: Sequence[IceServerConfig]) -> RTCPeerConnection:
    # An explicit list, even empty: with none aiortc would add a public STUN server.
    servers = [RTCIceServer(s.urls, s.username, s.credential) for s in ice_servers]
    return RTCPeerConnection(RTCConfiguration(iceServers=servers))


def parse_offer(sdp: str, kind: str = "offer") -> RTCSessionDescription:
    """Check an SDP offer before aiortc sees it; raises SignallingError in plain words."""
    if kind != "offer":
        raise SignallingError(f"expected an SDP offer, got type {kind!r}")
    if len(sdp.encode()) > MAX_SDP_BYTES:
        raise SignallingError("the SDP offer is too large")
    if not sdp.startswith("v=0"):
        raise SignallingError("the SDP offer is malformed: it must start with 'v=0'")
    if "\nm=audio " not in sdp.replace("\r\n", "\n"):
        raise SignallingError("the SDP offer has no audio section")
    if " opus/48000" not in sdp.lower():
        raise SignallingError(
            "the SDP offer has no Opus audio: voice-relay sends and receives Opus, as browsers do"
        )
    return RTCSessionDescription(sdp=sdp, type="offer")
