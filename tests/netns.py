"""A test network of namespaces and veth pairs, with nftables rules and a coturn of its own.

The topology of docs/connectivity (every address a private test address on a veth between
namespaces made here, so no packet leaves the machine):

    client ── home (masquerade) ──┐
    turn   (coturn) ───────────── wan (router)
    relay  (server, "public") ────┤
    nat    (1:1 DNAT/SNAT) ───────┘
      └─ relaynat (server behind that NAT)

Each run has its own name prefix; `close()` stops every process started here and deletes every
namespace, also after a failure. Works as root, also inside `make test`'s `unshare -n` (named
namespaces live under /run/netns of the mount namespace, which `unshare -n` shares).
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import ctypes
import hashlib
import hmac
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TypeVar

T = TypeVar("T")

TOOLS = {
    "ip": "iproute2",
    "nft": "nftables",
    "turnserver": "coturn",
    "openssl": "openssl",
    "certutil": "libnss3-tools",
    "nsenter": "util-linux",
}
# router, host, router address, host address: one /24 per veth pair.
LINKS = (
    ("wan", "home", "198.18.1.1", "198.18.1.2"),
    ("wan", "turn", "198.18.2.1", "198.18.2.2"),
    ("wan", "relay", "198.18.3.1", "198.18.3.2"),
    ("wan", "nat", "198.18.4.1", "198.18.4.2"),
    ("home", "client", "10.77.1.1", "10.77.1.2"),
    ("nat", "relaynat", "10.77.2.1", "10.77.2.2"),
)
ROUTERS = ("wan", "home", "nat")
ADDRESS = {host: address for _, host, _, address in LINKS}
UPLINK = "up0"  # every host's interface towards its router
RELAY_PORT = 8080
NAT_UDP_PORTS = (40000, 40099)  # what the cloud NAT forwards 1:1 to relaynat
BLOCK_TABLE = "vrblock"

HOME_NAT = f"""
table ip nat {{
  chain postrouting {{ type nat hook postrouting priority srcnat; oifname "{UPLINK}" masquerade; }}
}}
"""
CLOUD_NAT = f"""
table ip nat {{
  chain prerouting {{
    type nat hook prerouting priority dstnat;
    iifname "{UPLINK}" tcp dport {RELAY_PORT} dnat to {ADDRESS["relaynat"]}
    iifname "{UPLINK}" udp dport {NAT_UDP_PORTS[0]}-{NAT_UDP_PORTS[1]} dnat to {ADDRESS["relaynat"]}
  }}
  chain postrouting {{
    type nat hook postrouting priority srcnat;
    oifname "{UPLINK}" ip saddr {ADDRESS["relaynat"]} snat to {ADDRESS["nat"]}
  }}
}}
"""
# A firewall that drops every UDP packet the host sends (loopback aside), counting them.
UDP_BLOCK = f"""
table inet {BLOCK_TABLE} {{
  chain output {{
    type filter hook output priority filter; policy accept;
    oifname "lo" accept
    meta l4proto udp counter drop
  }}
}}
"""

_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def missing() -> str | None:
    """Why this machine cannot build the network (not root, a tool missing), or None."""
    if os.geteuid() != 0:
        return "network namespaces need root (CI runs the tests as root)"
    absent = sorted({package for tool, package in TOOLS.items() if shutil.which(tool) is None})
    return f"needs apt-get install {' '.join(absent)}" if absent else None


def run(*cmd: str, input: str | None = None) -> str:
    result = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {result.stderr.strip()}")
    return result.stdout


@dataclass
class Network:
    prefix: str
    namespaces: list[str] = field(default_factory=list)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def ns(self, role: str) -> str:
        return f"{self.prefix}-{role}"

    def exec(self, role: str, *cmd: str, input: str | None = None) -> str:
        return run("ip", "netns", "exec", self.ns(role), *cmd, input=input)

    def nft(self, role: str, rules: str) -> None:
        self.exec(role, "nft", "-f", "-", input=rules)

    def block_udp(self, role: str) -> None:
        """Drop `role`'s outgoing UDP (a fresh counter); unblock_udp() lifts it."""
        self.unblock_udp(role)
        self.nft(role, UDP_BLOCK)

    def unblock_udp(self, role: str) -> None:
        tables = self.exec(role, "nft", "list", "tables")
        if f"inet {BLOCK_TABLE}" in tables:
            self.exec(role, "nft", "delete", "table", "inet", BLOCK_TABLE)

    def dropped_udp(self, role: str) -> int:
        """Packets the UDP block has dropped so far."""
        listing = json.loads(self.exec(role, "nft", "-j", "list", "table", "inet", BLOCK_TABLE))
        for item in listing["nftables"]:
            for expr in item.get("rule", {}).get("expr", []):
                if "counter" in expr:
                    return int(expr["counter"]["packets"])
        raise AssertionError("the UDP block rule has no counter")

    def spawn(
        self, role: str, cmd: list[str], env: dict[str, str], log: IO[bytes]
    ) -> subprocess.Popen[bytes]:
        """Start `cmd` in `role`'s namespace; close() stops it."""
        process = subprocess.Popen(
            ["ip", "netns", "exec", self.ns(role), *cmd],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        self.processes.append(process)
        return process

    def call(self, role: str, fn: Callable[[], T]) -> T:
        """`fn()` run in a new thread that has entered `role`'s network namespace (only that
        thread does: setns(CLONE_NEWNET) is per thread), so its sockets are that host's."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        path = f"/run/netns/{self.ns(role)}"

        def target() -> None:
            try:
                fd = os.open(path, os.O_RDONLY)
                try:
                    if _libc.setns(fd, _CLONE_NEWNET) != 0:
                        raise OSError(ctypes.get_errno(), f"setns {path}")
                finally:
                    os.close(fd)
                future.set_result(fn())
            except BaseException as error:  # handed to the caller
                future.set_exception(error)

        threading.Thread(target=target, name=f"netns-{role}", daemon=True).start()
        return future.result()

    async def acall(self, role: str, fn: Callable[[], T]) -> T:
        """call() without blocking the event loop."""
        return await asyncio.to_thread(self.call, role, fn)

    def wait_tcp(self, role: str, address: str, port: int, process: subprocess.Popen[bytes],
                 timeout_s: float = 60.0) -> None:  # fmt: skip
        """Wait until `address:port` accepts TCP from `role` while `process` keeps running."""

        def probe() -> bool:
            try:
                socket.create_connection((address, port), timeout=1).close()
                return True
            except OSError:
                return False

        deadline = time.monotonic() + timeout_s
        while not self.call(role, probe):
            if process.poll() is not None:
                raise RuntimeError(f"{process.args!r} exited with status {process.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing listens on {address}:{port} after {timeout_s} s")
            time.sleep(0.2)

    def close(self) -> None:
        for process in self.processes:
            stop(process)
        self.processes.clear()
        for name in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "delete", name], capture_output=True, timeout=30)
        self.namespaces.clear()


def stop(process: subprocess.Popen[bytes], timeout_s: float = 5.0) -> None:
    """SIGTERM to the process group (ip netns exec's child included), SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout_s)


@contextmanager
def network(prefix: str | None = None) -> Iterator[Network]:
    """The whole topology, up and routed, with both NATs in place; deleted on exit."""
    net = Network(prefix or f"vrt{os.getpid()}")
    try:
        for role in ("wan", *dict.fromkeys(host for _, host, _, _ in LINKS)):
            run("ip", "netns", "add", net.ns(role))
            net.namespaces.append(net.ns(role))
            # IPv4 only: fewer candidates, and nothing IPv6 to route.
            net.exec(role, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
                     "net.ipv6.conf.default.disable_ipv6=1")  # fmt: skip
            run("ip", "-n", net.ns(role), "link", "set", "lo", "up")
        for router, host, router_address, host_address in LINKS:
            run("ip", "-n", net.ns(router), "link", "add", f"to-{host}", "type", "veth",
                "peer", "name", UPLINK, "netns", net.ns(host))  # fmt: skip
            for role, dev, address in (
                (router, f"to-{host}", router_address),
                (host, UPLINK, host_address),
            ):
                run("ip", "-n", net.ns(role), "addr", "add", f"{address}/24", "dev", dev)
                run("ip", "-n", net.ns(role), "link", "set", dev, "up")
            run("ip", "-n", net.ns(host), "route", "add", "default", "via", router_address)
        for router in ROUTERS:
            net.exec(router, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        net.nft("home", HOME_NAT)
        net.nft("nat", CLOUD_NAT)
        yield net
    finally:
        net.close()


# -- TURN ---------------------------------------------------------------------------------------


def make_certificate(directory: Path, address: str) -> tuple[Path, Path]:
    """A self-signed EC certificate for `address` (an IP SAN) and its key."""
    cert, key = directory / "turn-cert.pem", directory / "turn-key.pem"
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-days", "2", "-subj", "/CN=voice-relay test TURN", "-keyout", str(key),
        "-out", str(cert), "-addext", f"subjectAltName=IP:{address}")  # fmt: skip
    return cert, key


def trust_certificate(home: Path, cert: Path) -> None:
    """Chromium (NSS) trusts `cert` for a process whose HOME is `home`."""
    db = home / ".pki" / "nssdb"
    db.mkdir(parents=True, exist_ok=True)
    run("certutil", "-N", "-d", f"sql:{db}", "--empty-password")
    run(
        "certutil",
        "-A",
        "-d",
        f"sql:{db}",
        "-n",
        "voice-relay-test-turn",
        "-t",
        "CP,,",
        "-i",
        str(cert),
    )


def turn_credentials(secret: str, expires_at: float, name: str = "test") -> tuple[str, str]:
    """TURN REST API credentials (coturn use-auth-secret): "<expiry>:<name>", HMAC-SHA1."""
    username = f"{int(expires_at)}:{name}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


@dataclass(frozen=True)
class Turn:
    address: str
    secret: str
    cert: Path

    def url(self, transport: str) -> str:
        """turn:/turns: URL for transport "udp", "tcp" or "tls"."""
        if transport == "tls":
            return f"turns:{self.address}:5349?transport=tcp"
        return f"turn:{self.address}:3478?transport={transport}"


def start_coturn(net: Network, directory: Path, secret: str, role: str = "turn") -> Turn:
    """Debian's coturn in `role`'s namespace (foreground, a child of this process), listening on
    UDP/TCP 3478 and TLS 5349 with a self-signed certificate."""
    address = ADDRESS[role]
    cert, key = make_certificate(directory, address)
    config = directory / "turnserver.conf"
    config.write_text(
        "\n".join([
            f"listening-ip={address}", f"relay-ip={address}", "listening-port=3478",
            "tls-listening-port=5349", "fingerprint", "use-auth-secret",
            f"static-auth-secret={secret}", "realm=voice-relay.test", f"cert={cert}",
            f"pkey={key}", "no-cli", "no-dtls", "log-file=stdout", "simple-log",
            f"userdb={directory / 'turndb'}", f"pidfile={directory / 'turnserver.pid'}",
        ]) + "\n"
    )  # fmt: skip
    with open(directory / "turnserver.log", "wb") as log:  # the child keeps its own descriptor
        process = net.spawn(role, ["turnserver", "-c", str(config)], dict(os.environ), log)
    net.wait_tcp(role, address, 3478, process)
    net.wait_tcp(role, address, 5349, process)
    return Turn(address, secret, cert)
