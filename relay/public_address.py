"""The address a server behind 1:1 NAT advertises (pion's NAT 1:1 IPs, LiveKit's external IP).

aioice can only announce the address a host candidate is bound to, and a cloud VM binds its
private one. The answer's host candidates and `c=` lines are rewritten to the public address;
aioice keeps the private socket, which is where the NAT delivers the client's packets.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

ANY = ""  # the private side of a bare PUBLIC entry: every host address of its IP version


def _address(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        raise ValueError(f"{text.strip()!r} is not an IP address") from None


def _version(address: str) -> int:
    return 6 if ":" in address else 4


@dataclass(frozen=True)
class PublicAddresses:
    """(private, public) pairs; a pair whose private side is ANY maps every other address."""

    pairs: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, text: str) -> PublicAddresses:
        """`203.0.113.7`, or `10.0.0.5=203.0.113.7,10.0.1.5=198.51.100.2` (comma-separated)."""
        pairs: list[tuple[str, str]] = []
        for entry in filter(None, (part.strip() for part in text.split(","))):
            private, equals, public = entry.rpartition("=")
            pair = (_address(private) if equals else ANY, _address(public))
            if pair[0] != ANY and _version(pair[0]) != _version(pair[1]):
                raise ValueError(f"{entry!r} maps an address to one of another IP version")
            if any(p == pair[0] for p, _ in pairs):
                raise ValueError(f"{entry!r}: {pair[0] or 'the default'} is mapped twice")
            pairs.append(pair)
        return cls(tuple(pairs))

    def __bool__(self) -> bool:
        return bool(self.pairs)

    def public_for(self, private: str) -> str | None:
        """What to advertise for a host candidate on `private`, None to leave it."""
        fallback = None
        for mapped, public in self.pairs:
            if mapped == private:
                return public
            if mapped == ANY and _version(public) == _version(private):
                fallback = public
        return fallback

    def rewrite(self, sdp: str) -> str:
        """`sdp` with its host candidates' addresses, and the `c=` lines that name them,
        replaced by public ones (never `c=IN IP4 0.0.0.0`, the no-candidate placeholder)."""
        lines = sdp.split("\r\n")
        hosts: set[str] = set()
        for index, line in enumerate(lines):
            # a=candidate:FOUNDATION COMPONENT TRANSPORT PRIORITY ADDRESS PORT typ TYPE ...
            parts = line.split(" ")
            if line.startswith("a=candidate:") and len(parts) >= 8 and parts[7] == "host":
                hosts.add(parts[4])
                parts[4] = self.public_for(parts[4]) or parts[4]
                lines[index] = " ".join(parts)
        for index, line in enumerate(lines):
            parts = line.split(" ")
            if line.startswith("c=IN IP") and len(parts) == 3 and parts[2] in hosts:
                public = self.public_for(parts[2])
                if public is not None:
                    lines[index] = f"c=IN IP{_version(public)} {public}"
        return "\r\n".join(lines)
