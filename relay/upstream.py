"""Every private part of aiortc and aioice the relay reaches, in one place, for known versions only.

aiortc has no option to replace a receiver's jitter buffer (relay/decoding.py) and aioice none
to choose the addresses it gathers host candidates on (relay/peer.py) or the ports it binds them
on (relay/udp_ports.py). They are reached here and nowhere else. Another release may rename or
rework any of them, so importing this module with other versions installed fails at once instead
of the media path misbehaving quietly.
"""

from __future__ import annotations

import asyncio
import socket
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from importlib import metadata
from typing import Protocol

import aioice.ice
from aiortc import RTCRtpReceiver
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket

# The release series this module was written against; pyproject.toml pins the same ones.
SUPPORTED_SERIES = {"aiortc": "1.16", "aioice": "0.13"}


def check_versions(installed: Callable[[str], str] = metadata.version) -> None:
    """Raise ImportError, saying what to do, unless the supported series are installed."""
    for package, series in SUPPORTED_SERIES.items():
        version = installed(package)
        if version != series and not version.startswith(series + "."):
            supported = ", ".join(f"{p} {s}.x" for p, s in SUPPORTED_SERIES.items())
            raise ImportError(
                f"voice-relay reaches private parts of {supported} (relay/upstream.py), but "
                f"{package} {version} is installed. Install the versions pyproject.toml pins "
                f"(`pip install -e .`); to move to {package} {version}, review relay/upstream.py "
                "against it, then update SUPPORTED_SERIES and the pins in pyproject.toml together."
            )


check_versions()

# -- aiortc: a receiver's jitter buffer ----------------------------------------------------------

# RTCRtpReceiver's: RTP packets -> encoded frames; payload type -> codec, filled by receive().
JITTER_BUFFER_ATTRIBUTE = "_RTCRtpReceiver__jitter_buffer"
CODECS_ATTRIBUTE = "_RTCRtpReceiver__codecs"


class JitterBufferLike(Protocol):
    """What RTCRtpReceiver asks of its jitter buffer for each packet: (send a PLI?, frame)."""

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]: ...


def replace_jitter_buffer(receiver: RTCRtpReceiver, jitter_buffer: JitterBufferLike) -> None:
    """Hand `receiver`'s packets to `jitter_buffer`; frames it returns go to aiortc's decoder."""
    setattr(receiver, JITTER_BUFFER_ATTRIBUTE, jitter_buffer)


def receiver_codecs(receiver: RTCRtpReceiver) -> dict[int, RTCRtpCodecParameters]:
    """The receiver's own map (still empty before it starts; aiortc fills it in place)."""
    codecs: dict[int, RTCRtpCodecParameters] = getattr(receiver, CODECS_ATTRIBUTE)
    return codecs


def depayloaded(packet: RtpPacket) -> bytes:
    """The codec payload the receiver unpacked before its jitter buffer (Opus: the payload)."""
    data: bytes = getattr(packet, "_data", packet.payload)
    return data


# -- aioice: host-candidate addresses per peer connection ----------------------------------------

_host_addresses: ContextVar[tuple[str, ...]] = ContextVar("host_addresses", default=())
_aioice_host_addresses = aioice.ice.get_host_addresses


def _get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    chosen = _host_addresses.get()
    if not chosen:  # aioice's own: every interface but loopback
        return _aioice_host_addresses(use_ipv4=use_ipv4, use_ipv6=use_ipv6)
    return [a for a in chosen if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]


# aioice has no option for this; its module-level lookup is the seam. Patched once, for good: it
# only differs from aioice's own where `gathering_on` is in effect.
aioice.ice.get_host_addresses = _get_host_addresses


def host_addresses_for(addresses: tuple[str, ...]) -> list[str]:
    """The addresses a connection gathering on `addresses` binds host candidates on."""
    token = _host_addresses.set(addresses)
    try:
        return _get_host_addresses(use_ipv4=True, use_ipv6=True)  # aiortc asks for both
    finally:
        _host_addresses.reset(token)


@contextmanager
def gathering_on(addresses: tuple[str, ...]) -> Iterator[None]:
    """ICE connections gather host candidates on `addresses` only (all when empty) inside this
    block, and in the tasks it starts; other connections, even in the same process, are not."""
    token = _host_addresses.set(addresses)
    try:
        yield
    finally:
        _host_addresses.reset(token)


# -- aioice: host candidates inside a UDP port range ---------------------------------------------


class PortBinder(Protocol):
    """Hands out a bound UDP socket for a host candidate on `host` (relay/udp_ports.py)."""

    def bind(self, host: str) -> socket.socket: ...


_port_binder: ContextVar[PortBinder | None] = ContextVar("port_binder", default=None)
_wrapped_loops: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()


def _bind_host_candidates_through_binder(loop: asyncio.AbstractEventLoop) -> None:
    """aioice binds each host candidate with `loop.create_datagram_endpoint(factory,
    local_addr=(address, 0))` and has no option for a port range; that call shape (no
    remote_addr, port 0) is the seam. Only calls inside `binding_ports` change."""
    if loop in _wrapped_loops:
        return
    original = loop.create_datagram_endpoint

    async def create_datagram_endpoint(  # type: ignore[no-untyped-def]
        protocol_factory, local_addr=None, remote_addr=None, **kwargs
    ):
        binder = _port_binder.get()
        if binder is None or remote_addr is not None or kwargs or local_addr is None:
            return await original(
                protocol_factory, local_addr=local_addr, remote_addr=remote_addr, **kwargs
            )
        host, port = local_addr
        if port != 0:
            return await original(protocol_factory, local_addr=local_addr)
        # An OSError here is what aioice expects of a failed bind: it skips the address.
        return await original(protocol_factory, sock=binder.bind(host))

    loop.create_datagram_endpoint = create_datagram_endpoint  # type: ignore[method-assign]
    _wrapped_loops.add(loop)


@contextmanager
def binding_ports(binder: PortBinder | None) -> Iterator[None]:
    """Host candidates gathered inside this block (and the tasks it starts) bind their sockets
    through `binder`; without one, and everywhere else in the process, aioice binds port 0."""
    if binder is not None:
        _bind_host_candidates_through_binder(asyncio.get_running_loop())
    token = _port_binder.set(binder)
    try:
        yield
    finally:
        _port_binder.reset(token)
