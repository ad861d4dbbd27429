"""Who may open /v1/realtime, and what one connection may send.

The relay's own sessions reach this process's endpoint with `Settings.relay_credential`: the
session registry counts them already, so they pass uncounted (one conversation, one place).
Anyone else needs no browser Origin but this server's own (non-browser clients send none; no
page of ours opens this endpoint, so its public address is the only own origin), the bearer
token when one is set (listening beyond loopback without one, no outside client gets in), and a
free place among `max_sessions`, which outside connections share with the relay's sessions.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from starlette.requests import HTTPConnection

from localmodel.append_limit import AppendLimit

from .links.access import origin_of
from .settings import Settings

# The largest message a connection may send: a 5 s append (the rate limit's burst, 320 KB of
# base64) or a long session.update, with room to spare. Bigger ones close the socket (1009).
MAX_MESSAGE_BYTES = 1024 * 1024
APPEND_LIMIT = AppendLimit(speed=2.0, burst_ms=5_000)
RETRY_AFTER_S = 5
# uvicorn options for every server of /v1/realtime. Without permessage-deflate a message costs
# the sender what it costs us: no bomb inflates one TCP read into many full-size messages. The
# sans-I/O protocol stops reading until the app has taken each message, so one connection holds
# at most one message and one read in memory.
UVICORN_OPTIONS: dict[str, Any] = {
    "ws": "websockets-sansio",
    "ws_max_size": MAX_MESSAGE_BYTES,
    "ws_per_message_deflate": False,
}


class RealtimeRefused(Exception):
    """The handshake is refused with this HTTP status and JSON error."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def on_loopback(host: str) -> bool:
    """Whether listening on `host` keeps the server to this machine."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name or every interface ("0.0.0.0", "::"): reachable from outside


def _bearer(connection: HTTPConnection) -> str | None:
    scheme, _, value = connection.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _same(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


class RealtimeGuard:
    """Admission to /v1/realtime for one app.

    `relay_sessions`: how many conversations the relay in this process holds.
    """

    def __init__(self, settings: Settings, relay_sessions: Callable[[], int] = lambda: 0) -> None:
        self._settings = settings
        self._relay_sessions = relay_sessions
        self.outside = 0  # outside connections open now

    @property
    def token_required(self) -> bool:
        return self._settings.realtime_token is not None or not on_loopback(self._settings.host)

    @contextmanager
    def admit(self, connection: HTTPConnection) -> Iterator[None]:
        """Holds a place while the block runs, or raises RealtimeRefused."""
        bearer = _bearer(connection)
        if _same(bearer, self._settings.relay_credential):
            yield  # the relay's own session: counted in the registry
            return
        self._check_origin(connection.headers.get("origin"))
        self._check_token(bearer)
        # Check and take the place with no await in between: racing handshakes cannot both win.
        limit = self._settings.resolved_max_sessions
        if self._relay_sessions() + self.outside >= limit:
            raise RealtimeRefused(
                503,
                "at_capacity",
                f"This server is busy: it already serves {limit} conversations, its limit. "
                "Please try again in a few seconds.",
                {"Retry-After": str(RETRY_AFTER_S)},
            )
        self.outside += 1
        try:
            yield
        finally:
            self.outside -= 1

    def _check_origin(self, origin: str | None) -> None:
        if origin is not None and origin.lower() != origin_of(self._settings.base_url()):
            raise RealtimeRefused(
                403, "origin_not_allowed", f"/v1/realtime may not be used from {origin}"
            )

    def _check_token(self, bearer: str | None) -> None:
        token = self._settings.realtime_token
        if token is None:
            if self.token_required:
                raise RealtimeRefused(
                    403,
                    "realtime_token_required",
                    "This server listens beyond loopback: /v1/realtime opens only with "
                    "VOICE_RELAY_REALTIME_TOKEN set.",
                )
            return
        if not _same(bearer, token.get_secret_value()):
            raise RealtimeRefused(
                401,
                "unauthorized",
                "/v1/realtime needs 'Authorization: Bearer <VOICE_RELAY_REALTIME_TOKEN>'",
                {"WWW-Authenticate": "Bearer"},
            )
