"""Server tools: the relay POSTs a call's arguments to the tool's HTTPS webhook, signed.

The request body is JSON `{"tool", "call_id", "session_id", "arguments"}`, with headers
`X-Voice-Relay-Timestamp` (Unix seconds) and `X-Voice-Relay-Signature`
(`sha256=` + hex HMAC-SHA256 of `"<timestamp>.<body>"` with the webhook secret), so the
receiver can check who sent it and refuse replays. A 2xx answer's body (at most
relay.tools.MAX_OUTPUT_BYTES) is the call's output; anything else is an error result.

Webhooks must not reach the relay's own network: the host is resolved and every address must
be public (unless the operator allows private ones); the request goes to the address that was
checked, with the host name for TLS (SNI and certificate) and the Host header, so a DNS answer
cannot change between the check and the connection. No redirects, no proxies from the
environment. TLS is verified against the system store (which honours SSL_CERT_FILE) or
`WebhookOptions.ca_file`.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import ipaddress
import json
import logging
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx

from .tools import CLIENT_CALL_TIMEOUT_S, MAX_OUTPUT_BYTES, ClientTool, ServerTool, ToolCall

logger = logging.getLogger(__name__)

WEBHOOK_TIMEOUT_S = 10.0
SIGNATURE_HEADER = "X-Voice-Relay-Signature"
TIMESTAMP_HEADER = "X-Voice-Relay-Timestamp"


@dataclass(frozen=True)
class WebhookOptions:
    secret: str | None = field(default=None, repr=False)  # signs every request; none: refused
    allow_private: bool = False  # webhooks may reach loopback, private and link-local addresses
    ca_file: Path | None = None  # trust this CA bundle instead of the system's
    timeout_s: float = WEBHOOK_TIMEOUT_S


class WebhookFailed(Exception):
    """The call did not give an output; the message goes to the model as the error."""


def signature(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def _refused(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return not address.is_global or address.is_multicast


def literal_address_refused(url: str, allow_private: bool) -> str | None:
    """Why `url` may not be declared, when that is known without DNS: its host is a private
    address or `localhost`. None: it may be declared (its addresses are checked at each call)."""
    host = (urlsplit(url).hostname or "").lower()
    if allow_private:
        return None
    if host == "localhost" or host.endswith(".localhost"):
        return f"webhook host {host!r} is private"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    return f"webhook address {host} is private" if _refused(address) else None


async def resolve_public(host: str, port: int, allow_private: bool) -> str:
    """An address of `host` to connect to; every address it resolves to must be allowed."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise WebhookFailed(f"webhook host {host!r} does not resolve ({exc})") from None
    addresses = [str(info[4][0]) for info in infos]
    if not addresses:
        raise WebhookFailed(f"webhook host {host!r} does not resolve")
    for text in addresses:
        if not allow_private and _refused(ipaddress.ip_address(text.split("%")[0])):
            raise WebhookFailed(f"webhook address {text} is private (refused)")
    return addresses[0]


@functools.lru_cache(maxsize=4)
def _ssl_context(ca_file: Path | None) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)


async def call_webhook(
    client: httpx.AsyncClient, options: WebhookOptions, tool: ServerTool, body: bytes
) -> str:
    """POST `body` to the tool's webhook; its answer's body, or WebhookFailed."""
    if not options.secret:
        raise WebhookFailed("server tools are not configured (no webhook secret)")
    parts = urlsplit(tool.url)
    host = parts.hostname or ""
    port = parts.port or 443
    address = await resolve_public(host, port, options.allow_private)
    netloc = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
    pinned = urlunsplit(("https", netloc, parts.path or "/", parts.query, ""))
    timestamp = str(int(time.time()))
    headers = {
        "Host": parts.netloc.rsplit("@", 1)[-1],
        "Content-Type": "application/json",
        "Accept-Encoding": "identity",
        "User-Agent": "voice-relay",
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: signature(options.secret, timestamp, body),
    }
    extensions = {"sni_hostname": host}
    try:
        async with client.stream(
            "POST", pinned, content=body, headers=headers, extensions=extensions
        ) as response:
            received = bytearray()
            async for chunk in response.aiter_raw():
                received += chunk
                if len(received) > MAX_OUTPUT_BYTES:
                    raise WebhookFailed(f"the webhook's answer exceeds {MAX_OUTPUT_BYTES} bytes")
            if not 200 <= response.status_code < 300:
                raise WebhookFailed(f"the webhook answered HTTP {response.status_code}")
    except httpx.HTTPError as exc:
        raise WebhookFailed(f"the webhook could not be reached: {type(exc).__name__}") from None
    text = received.decode("utf-8", errors="replace").strip()
    return text or "{}"


class ToolRunner:
    """Runs one session's calls: server calls as tasks, client calls as deadlines (the page
    answers through the session). Each ends in exactly one `on_result(call_id, output, error)`
    (a late one is ignored by relay.tools.ToolCalls)."""

    def __init__(
        self,
        options: WebhookOptions,
        on_result: Callable[[str, str | None, str | None], None],
        session_id: str,
    ) -> None:
        self._options = options
        self._on_result = on_result
        self._session_id = session_id
        self._client: httpx.AsyncClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._deadlines: dict[str, asyncio.TimerHandle] = {}

    def start(self, call: ToolCall) -> None:
        loop = asyncio.get_running_loop()
        if isinstance(call.tool, ClientTool):
            self._deadlines[call.call_id] = loop.call_later(
                CLIENT_CALL_TIMEOUT_S, self._client_timed_out, call.call_id
            )
            return
        task = loop.create_task(self._run(call), name=f"session-{self._session_id}-tool")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def answered(self, call_id: str) -> None:
        """The page answered a client call: its deadline is off."""
        deadline = self._deadlines.pop(call_id, None)
        if deadline is not None:
            deadline.cancel()

    def _client_timed_out(self, call_id: str) -> None:
        self._deadlines.pop(call_id, None)
        timeout = f"the page did not answer within {CLIENT_CALL_TIMEOUT_S:g} s"
        self._on_result(call_id, None, timeout)

    async def _run(self, call: ToolCall) -> None:
        assert isinstance(call.tool, ServerTool)
        body = json.dumps(
            {
                "tool": call.tool.name,
                "call_id": call.call_id,
                "session_id": self._session_id,
                "arguments": call.arguments,
            }
        ).encode()
        output: str | None = None
        error: str | None = None
        try:
            async with asyncio.timeout(self._options.timeout_s):
                output = await call_webhook(await self._http(), self._options, call.tool, body)
        except TimeoutError:
            error = f"the webhook did not answer within {self._options.timeout_s:g} s"
        except WebhookFailed as exc:
            error = str(exc)
        except Exception as exc:  # a tool must never end the conversation
            logger.exception("Session(%s) webhook %s failed", self._session_id, call.tool.name)
            error = f"the webhook call failed: {type(exc).__name__}"
        self._on_result(call.call_id, output, error)

    async def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            # Loading a CA bundle reads files: not on the event loop.
            context = await asyncio.to_thread(_ssl_context, self._options.ca_file)
            self._client = httpx.AsyncClient(
                verify=context, follow_redirects=False, trust_env=False, timeout=None
            )
        return self._client

    async def close(self) -> None:
        for deadline in self._deadlines.values():
            deadline.cancel()
        self._deadlines.clear()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None
