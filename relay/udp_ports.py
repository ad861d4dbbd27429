"""A fixed UDP port range for host candidates: the ports a firewall opens or a cloud NAT forwards.

aioice binds every host candidate on port 0 (any port); relay/upstream.py hands its binds to a
`UdpPortPool` instead, for the peer connections that have one. A peer connection reserves its
ports when it is made, with no await in between, so two offers cannot both count on the last
free ones: a full range refuses the call (AtCapacity, 503) instead of aioice skipping the bind
and answering without a single candidate.
"""

from __future__ import annotations

import errno
import functools
import socket
from dataclasses import dataclass

from .errors import AtCapacity

RETRY_AFTER_S = 5


@dataclass(frozen=True)
class PortRange:
    """UDP ports `first` to `last`, both included."""

    first: int
    last: int

    def __post_init__(self) -> None:
        if not 1 <= self.first <= self.last <= 65535:
            raise ValueError(f"{self} is not a port range: want FIRST-LAST within 1-65535")

    @classmethod
    def parse(cls, text: str) -> PortRange:
        """`40000-40999`."""
        first, dash, last = text.strip().partition("-")
        if not dash or not first.strip().isdigit() or not last.strip().isdigit():
            raise ValueError(f"{text!r} is not a port range like 40000-40999")
        return cls(int(first), int(last))

    def __len__(self) -> int:
        return self.last - self.first + 1

    def split(self, parts: int) -> list[PortRange]:
        """`parts` consecutive ranges as even as can be, one per process sharing this one."""
        if not 1 <= parts <= len(self):
            raise ValueError(f"the UDP port range {self} cannot be split into {parts} ranges")
        size, extra = divmod(len(self), parts)
        ranges, first = [], self.first
        for index in range(parts):
            last = first + size - 1 + (1 if index < extra else 0)
            ranges.append(PortRange(first, last))
            first = last + 1
        return ranges

    def __str__(self) -> str:
        return f"{self.first}-{self.last}"


class PortReservation:
    """Ports a peer connection counts on; binds use them up, `release()` gives the rest back."""

    def __init__(self, pool: UdpPortPool, count: int) -> None:
        self.pool = pool
        self.count = count

    def bind(self, host: str) -> socket.socket:
        """A UDP socket on `host` and a free port of the range; OSError when none is left."""
        return self.pool.bind(host, self)

    def release(self) -> None:
        self.pool._reserved -= self.count
        self.count = 0


class UdpPortPool:
    """The host-candidate sockets this process has bound in one range, and the ports left.

    Ports held by another process are skipped when binding but still counted as free, so
    `available()` is an upper bound: give each relay process its own range.
    """

    def __init__(self, ports: PortRange) -> None:
        self.ports = ports
        self._sockets: dict[int, socket.socket] = {}
        self._reserved = 0
        # Binds go round the range, so a port freed a moment ago (whose peer may still send
        # to it) is the last to be handed out again.
        self._next = ports.first

    def available(self) -> int:
        self._forget_closed()
        return len(self.ports) - len(self._sockets) - self._reserved

    def reserve(self, count: int) -> PortReservation:
        free = self.available()
        if free < count:
            raise AtCapacity(
                f"This server has no UDP ports left for another call ({len(self.ports)} ports, "
                f"VOICE_RELAY_UDP_PORTS={self.ports}). Please try again in a few seconds.",
                retry_after_s=RETRY_AFTER_S,
            )
        self._reserved += count
        return PortReservation(self, count)

    def bind(self, host: str, reservation: PortReservation) -> socket.socket:
        # Beyond its reservation (an offer without BUNDLE has a transport per section) a peer
        # connection may still take a port nobody counts on.
        if reservation.count == 0 and self.available() <= 0:
            raise OSError(errno.EADDRINUSE, f"no free UDP port left in {self.ports}")
        self._forget_closed()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        for _ in range(len(self.ports)):
            port = self._next
            self._next = port + 1 if port < self.ports.last else self.ports.first
            if port in self._sockets:
                continue
            sock = socket.socket(family, socket.SOCK_DGRAM)
            try:
                sock.bind((host, port))
            except OSError as exc:
                sock.close()
                if exc.errno == errno.EADDRINUSE:
                    continue  # another process holds it
                raise
            self._sockets[port] = sock
            if reservation.count > 0:
                reservation.count -= 1
                self._reserved -= 1
            return sock
        raise OSError(errno.EADDRINUSE, f"no free UDP port left in {self.ports}")

    def _forget_closed(self) -> None:
        # asyncio closes the socket itself when aioice closes the transport.
        for port in [p for p, s in self._sockets.items() if s.fileno() == -1]:
            del self._sockets[port]


@functools.cache
def port_pool(ports: PortRange) -> UdpPortPool:
    """The process's one pool per range: every peer connection using it shares its ports."""
    return UdpPortPool(ports)
