"""RTCPeerConnection set-up: ICE servers, host-candidate addresses, offer checks, Opus only."""

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


class RelayPeerConnection(RTCPeerConnection):
    """An RTCPeerConnection that gathers host candidates on its own `host_addresses`.

    Empty: aioice's choice, every interface but loopback (tests and loopback-only deployments
    give 127.0.0.1). Per connection: aiortc gathers inside setLocalDescription.
    """

    def __init__(self, configuration: RTCConfiguration, host_addresses: Sequence[str] = ()) -> None:
        super().__init__(configuration)
        self.host_addresses = tuple(host_addresses)

    async def setLocalDescription(
        self, sessionDescription: RTCSessionDescription | None = None
    ) -> None:
        with upstream.gathering_on(self.host_addresses):
            await super().setLocalDescription(sessionDescription)


def create_peer_connection(
    ice_servers: Sequence[IceServerConfig], host_addresses: Sequence[str] = ()
) -> RTCPeerConnection:
    """A peer connection with exactly `ice_servers`, gathering host candidates on
    `host_addresses` (every interface but loopback when empty)."""
    # An explicit list, even empty: with none aiortc would add a public STUN server.
    servers = [RTCIceServer(s.urls, s.username, s.credential) for s in ice_servers]
    return RelayPeerConnection(RTCConfiguration(iceServers=servers), host_addresses)


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
