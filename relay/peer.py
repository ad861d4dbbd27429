"""RTCPeerConnection set-up: ICE servers, host-candidate addresses, ports and public address,
offer checks, Opus only."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamTrack

from . import upstream
from .errors import SignallingError
from .public_address import PublicAddresses
from .udp_ports import PortRange, PortReservation, port_pool

MAX_SDP_BYTES = 32 * 1024


@dataclass(frozen=True)
class IceServerConfig:
    urls: str | list[str]
    username: str | None = None
    credential: str | None = None


def add_opus_audio(pc: RTCPeerConnection, track: MediaStreamTrack) -> RTCRtpTransceiver:
    """The audio transceiver: sends `track`, receives the peer's, and negotiates Opus only,
    whatever the offer's codec order (the playout sends ready Opus packets and the uplink
    decodes Opus). Call before setRemoteDescription, which then takes this transceiver."""
    transceiver = pc.addTransceiver(track, direction="sendrecv")
    opus = [c for c in RTCRtpSender.getCapabilities("audio").codecs if c.name.lower() == "opus"]
    transceiver.setCodecPreferences(opus)
    return transceiver


@dataclass(frozen=True)
class PeerNetwork:
    """Where host candidates bind and what the answer advertises for them.

    `udp_ports`: every host candidate binds a port of this range (any port when None).
    `public_addresses`: behind 1:1 NAT, the public address the answer names instead of the
    private one the candidate is bound to.
    """

    udp_ports: PortRange | None = None
    public_addresses: PublicAddresses = PublicAddresses()


class RelayPeerConnection(RTCPeerConnection):
    """An RTCPeerConnection that gathers host candidates on its own `host_addresses`.

    Empty: aioice's choice, every interface but loopback (tests and loopback-only deployments
    give 127.0.0.1). Per connection: aiortc gathers inside setLocalDescription. With a port
    range it reserves a port per host address when made: AtCapacity if the range is full.
    """

    def __init__(
        self,
        configuration: RTCConfiguration,
        host_addresses: Sequence[str] = (),
        network: PeerNetwork = PeerNetwork(),
    ) -> None:
        self.host_addresses = tuple(host_addresses)
        self.network = network
        self._ports: PortReservation | None = None
        if network.udp_ports is not None:  # before aiortc starts anything that needs closing
            needed = len(upstream.host_addresses_for(self.host_addresses))
            self._ports = port_pool(network.udp_ports).reserve(needed)
        super().__init__(configuration)

    async def setLocalDescription(
        self, sessionDescription: RTCSessionDescription | None = None
    ) -> None:
        try:
            with upstream.gathering_on(self.host_addresses), upstream.binding_ports(self._ports):
                await super().setLocalDescription(sessionDescription)
        finally:
            self._release_ports()

    @property
    def localDescription(self) -> RTCSessionDescription:
        description: RTCSessionDescription = super().localDescription
        if description is None or not self.network.public_addresses:
            return description
        sdp = self.network.public_addresses.rewrite(description.sdp)
        return RTCSessionDescription(sdp=sdp, type=description.type)

    async def close(self) -> None:
        self._release_ports()
        await super().close()

    def _release_ports(self) -> None:
        # Ports bound stay taken until their sockets close; the unused rest goes back now.
        if self._ports is not None:
            self._ports.release()


def create_peer_connection(
    ice_servers: Sequence[IceServerConfig],
    host_addresses: Sequence[str] = (),
    network: PeerNetwork = PeerNetwork(),
) -> RTCPeerConnection:
    """A peer connection with exactly `ice_servers`, gathering host candidates on
    `host_addresses` (every interface but loopback when empty) as `network` says."""
    # An explicit list, even empty: with none aiortc would add a public STUN server.
    servers = [RTCIceServer(s.urls, s.username, s.credential) for s in ice_servers]
    return RelayPeerConnection(RTCConfiguration(iceServers=servers), host_addresses, network)


def parse_offer(sdp: str, kind: str = "offer") -> RTCSessionDescription:
    """Check an SDP offer before aiortc sees it; raises SignallingError in plain words."""
    if kind != "offer":
        raise SignallingError(f"expected an SDP offer, got type {kind!r}")
    if len(sdp.encode()) > MAX_SDP_BYTES:
        raise SignallingError("the SDP offer is too large")
    if not sdp.startswith("v=0"):
        raise SignallingError("the SDP offer is malformed: it must start with 'v=0'")
    sections = media_sections(sdp)
    if "audio" not in [section_kind for section_kind, _ in sections]:
        raise SignallingError("the SDP offer has no audio section")
    if " opus/48000" not in sdp.lower():
        raise SignallingError(
            "the SDP offer has no Opus audio: voice-relay sends and receives Opus, as browsers do"
        )
    check_bundle(sdp, sections)
    return RTCSessionDescription(sdp=sdp, type="offer")


def media_sections(sdp: str) -> list[tuple[str, str | None]]:
    """(kind, mid) of each m= section, in order; mid None when the section has no a=mid."""
    sections: list[tuple[str, str | None]] = []
    for line in sdp.splitlines():
        if line.startswith("m="):
            sections.append((line[2:].split(" ", 1)[0], None))
        elif line.startswith("a=mid:") and sections and sections[-1][1] is None:
            sections[-1] = (sections[-1][0], line[len("a=mid:") :].strip())
    return sections


def check_bundle(sdp: str, sections: list[tuple[str, str | None]]) -> None:
    """Every section has its own mid, and a BUNDLE group names exactly the sections there are:
    aiortc takes each mid on trust and fails deep inside (or on close) when one is missing."""
    mids = []
    for kind, mid in sections:
        if not mid:
            raise SignallingError(f"the SDP offer's m={kind} section has no a=mid")
        if mid in mids:
            raise SignallingError(f"the SDP offer has two m= sections with mid {mid!r}")
        mids.append(mid)
    groups = [line.split()[1:] for line in sdp.splitlines() if line.startswith("a=group:BUNDLE")]
    if not groups:
        return
    bundled = [mid for group in groups for mid in group]
    for kind, mid in sections:
        if mid not in bundled:
            raise SignallingError(
                f"the SDP offer's m={kind} section (mid {mid!r}) is not in its BUNDLE group"
            )
    for mid in bundled:
        if mid not in mids:
            raise SignallingError(
                f"the SDP offer's BUNDLE group names mid {mid!r}, but no m= section has it "
                f"(its sections: {', '.join(f'm={k} mid {m}' for k, m in sections)})"
            )
