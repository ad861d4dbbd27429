"""Answers only requests whose Host header names this server (defeats DNS rebinding).

A page on a rebound name (evil.example resolving to 127.0.0.1) sends `Host: evil.example` and a
matching Origin; without this check it would pass as one of our own pages.
"""

from __future__ import annotations

from collections.abc import Collection

from starlette.types import ASGIApp, Receive, Scope, Send

from ._responses import send_error

ANY_HOST = "*"


def host_name(host_header: str) -> str:
    """`example.org:8000` → `example.org`; `[::1]:8000` → `::1`."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class TrustedHostMiddleware:
    """`allowed_hosts`: host names (no port); `*.example.org` for subdomains, `*` for any."""

    def __init__(self, app: ASGIApp, *, allowed_hosts: Collection[str]) -> None:
        self.app = app
        self.allowed = {host.lower() for host in allowed_hosts}

    def allows(self, host: str) -> bool:
        if ANY_HOST in self.allowed or host in self.allowed:
            return True
        return any(
            pattern.startswith("*.") and host.endswith(pattern[1:]) for pattern in self.allowed
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        header = next((v for k, v in scope["headers"] if k == b"host"), b"")
        host = host_name(header.decode("latin-1"))
        if self.allows(host):
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})  # refused before accepting
        else:
            await send_error(
                send, 400, "host_not_allowed", f"this server does not answer to {host!r}"
            )
