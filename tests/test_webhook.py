"""Server tools against a real HTTPS webhook on 127.0.0.1 with a certificate made here.

Pins: the signed POST (HMAC over timestamp and body, checked by the receiver), TLS verified
against the CA the relay is told to trust (and refused without it), the answer as the call's
output; timeouts, error statuses, redirects and oversized answers become error results;
private addresses are refused unless allowed, at declaration and at call time; one whole round
trip through the app, a realtime server that calls the tool and a real aiortc peer.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import hmac
import ipaddress
import json
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from relay.tools import MAX_OUTPUT_BYTES, ServerTool, ToolCall
from relay.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, ToolRunner, WebhookOptions
from web.settings import Settings

from .conftest import live_app, serving, wait_until
from .media import ClientPeer
from .realtime_server import recording_server

SECRET = "test-webhook-secret"
KEY = {"stepfun_api_key": "sk-test-stepfun"}


# -- a CA, a certificate for 127.0.0.1 and a receiver that checks what it gets -----------------


@dataclass(frozen=True)
class Tls:
    ca: Path
    cert: Path
    key: Path


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    folder = tmp_path_factory.mktemp("tls")
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("voice-relay test CA"))
        .issuer_name(_name("voice-relay test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = Tls(folder / "ca.pem", folder / "cert.pem", folder / "key.pem")
    paths.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


@dataclass
class Receiver:
    """What the webhook got: (path, headers, body, signature valid) per request."""

    url: str = ""
    requests: list[tuple[str, dict[str, str], dict[str, Any], bool]] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        stamp = headers.get(TIMESTAMP_HEADER.lower(), "")
        expected = hmac.new(SECRET.encode(), stamp.encode() + b"." + body, hashlib.sha256)
        given = headers.get(SIGNATURE_HEADER.lower(), "")
        valid = hmac.compare_digest(given, "sha256=" + expected.hexdigest())
        self.requests.append((scope["path"], headers, json.loads(body), valid))
        status, answer, extra = await self._answer(scope["path"], json.loads(body), valid)
        await send({"type": "http.response.start", "status": status, "headers": extra})
        await send({"type": "http.response.body", "body": answer})

    async def _answer(
        self, path: str, body: dict[str, Any], valid: bool
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        plain = [(b"content-type", b"application/json")]
        if not valid:
            return 401, b'{"error": "bad signature"}', plain
        if path == "/weather":
            city = body["arguments"].get("city")
            return 200, json.dumps({"city": city, "forecast": "sunny"}).encode(), plain
        if path == "/slow":
            await self.release.wait()
            return 200, b"{}", plain
        if path == "/big":
            return 200, b"x" * (MAX_OUTPUT_BYTES + 1), plain
        if path == "/redirect":
            return 302, b"", [(b"location", b"/weather")]
        return 500, b'{"error": "boom"}', plain


@asynccontextmanager
async def receiver(tls: Tls) -> AsyncIterator[Receiver]:
    hook = Receiver()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        hook.app,
        ssl_certfile=str(tls.cert),
        ssl_keyfile=str(tls.key),
        log_level="warning",
        lifespan="off",
        interface="asgi3",
    )
    try:
        async with serving(uvicorn.Server(config), sock):
            hook.url = f"https://127.0.0.1:{port}"
            try:
                yield hook
            finally:
                hook.release.set()
    finally:
        sock.close()


def weather(url: str) -> ServerTool:
    parameters = {"type": "object", "properties": {"city": {"type": "string"}}}
    return ServerTool(kind="server", name="get_weather", url=url, parameters=parameters)


async def run_once(options: WebhookOptions, tool: ServerTool) -> tuple[str | None, str | None]:
    done: asyncio.Future[tuple[str | None, str | None]] = asyncio.get_running_loop().create_future()
    runner = ToolRunner(options, lambda _id, out, err: done.set_result((out, err)), "sess_t")
    runner.start(ToolCall("call_1", tool, {"city": "Paris"}))
    try:
        return await asyncio.wait_for(done, 15)
    finally:
        await runner.close()


def trusted(tls: Tls, **options: Any) -> WebhookOptions:
    return WebhookOptions(**{"secret": SECRET, "allow_private": True, "ca_file": tls.ca, **options})


# -- the runner against the real receiver -----------------------------------------------------


async def test_signed_call_verified_by_the_receiver_and_its_answer_is_the_output(tls: Tls) -> None:
    async with receiver(tls) as hook:
        before = time.time()
        output, error = await run_once(trusted(tls), weather(f"{hook.url}/weather"))
    assert error is None
    assert json.loads(output or "") == {"city": "Paris", "forecast": "sunny"}
    [(path, headers, body, valid)] = hook.requests
    assert valid, "the receiver could not verify the signature"
    assert before - 1 <= int(headers[TIMESTAMP_HEADER.lower()]) <= time.time() + 1
    assert headers["host"] == hook.url.removeprefix("https://")
    assert body == {
        "tool": "get_weather",
        "call_id": "call_1",
        "session_id": "sess_t",
        "arguments": {"city": "Paris"},
    }


async def test_untrusted_certificate_is_refused(tls: Tls) -> None:
    async with receiver(tls) as hook:
        output, error = await run_once(trusted(tls, ca_file=None), weather(f"{hook.url}/weather"))
    assert output is None and error is not None and "could not be reached" in error
    assert hook.requests == []


@pytest.mark.parametrize(
    ("path", "options", "words"),
    [
        ("/slow", {"timeout_s": 0.5}, "did not answer within 0.5 s"),
        ("/fail", {}, "HTTP 500"),
        ("/redirect", {}, "HTTP 302"),  # never followed: it could lead anywhere
        ("/big", {}, f"exceeds {MAX_OUTPUT_BYTES} bytes"),
    ],
)
async def test_failures_become_error_results(
    tls: Tls, path: str, options: dict[str, Any], words: str
) -> None:
    async with receiver(tls) as hook:
        output, error = await run_once(trusted(tls, **options), weather(f"{hook.url}{path}"))
    assert output is None
    assert error is not None and words in error
    assert [request[0] for request in hook.requests] == [path]


async def test_private_address_refused_at_call_time_unless_allowed(tls: Tls) -> None:
    async with receiver(tls) as hook:
        by_ip = await run_once(trusted(tls, allow_private=False), weather(f"{hook.url}/weather"))
        by_name = weather(f"{hook.url.replace('127.0.0.1', 'localhost')}/weather")
        resolved = await run_once(trusted(tls, allow_private=False), by_name)
        unsigned = await run_once(trusted(tls, secret=None), weather(f"{hook.url}/weather"))
    assert by_ip[0] is None and "127.0.0.1 is private" in (by_ip[1] or "")
    assert resolved[0] is None and "is private" in (resolved[1] or "")
    assert unsigned[0] is None and "no webhook secret" in (unsigned[1] or "")
    assert hook.requests == []  # nothing was sent


def test_private_address_refused_at_declaration_unless_allowed() -> None:
    tool = [{"kind": "server", "name": "hook", "url": "https://10.0.0.8/hook"}]
    with pytest.raises(ValueError, match="10.0.0.8 is private"):
        Settings(_env_file=None, tools=tool, webhook_secret=SECRET)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="WEBHOOK_SECRET"):
        Settings(_env_file=None, tools=tool)  # type: ignore[call-arg]
    allowed = Settings(
        _env_file=None,  # type: ignore[call-arg]
        tools=tool,
        webhook_secret=SECRET,
        webhook_allow_private=True,
    )
    assert allowed.tools[0].name == "hook"


# -- the whole round trip: model calls, relay POSTs, model gets the output and answers -------


@pytest.mark.integration
async def test_server_tool_round_trip_through_the_relay(tls: Tls) -> None:
    async with receiver(tls) as hook, recording_server("stepfun") as backend:
        tools = [weather(f"{hook.url}/weather").model_dump()]
        async with (
            live_app(
                backend="stepfun",
                backend_url=backend.url,
                tools=tools,
                webhook_secret=SECRET,
                webhook_allow_private=True,
                webhook_ca_file=tls.ca,
                **KEY,
            ) as live,
            live.http() as http,
        ):
            client = ClientPeer()
            await client.connect(http)
            update = await backend.wait_for("session.update")
            # StepFun's sequence (developer guide): item created, argument deltas, done.
            call = {"call_id": "call_w1", "name": "get_weather"}
            await backend.send({"type": "response.created", "response": {"id": "resp_1"}})
            await backend.send(
                {
                    "type": "conversation.item.created",
                    "item": {"id": "item_f", "type": "function_call", "status": "incomplete"}
                    | call,
                }
            )
            for part in ('{"city":', '"Par', 'is"}'):
                await backend.send(
                    {"type": "response.function_call_arguments.delta", "arguments": part} | call
                )
            arguments = '{"city":"Paris"}'
            done = {"type": "response.function_call_arguments.done", "arguments": arguments}
            await backend.send(done | call)
            item = {"type": "function_call", "arguments": arguments, "status": "completed"}
            await backend.send(
                {"type": "response.output_item.done", "item": item | call}
            )  # the same call again: taken once
            await backend.send(
                {"type": "response.done", "response": {"id": "resp_1", "status": "completed"}}
            )
            output_event = await backend.wait_for("conversation.item.create", timeout_s=10)
            await backend.wait_for("response.create")
            await wait_until(lambda: len(client.events_of("tool")) >= 2)
            await client.close()

    assert update["session"]["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "",
                "parameters": tools[0]["parameters"],
            },
        }
    ]
    assert output_event["item"]["type"] == "function_call_output"
    assert output_event["item"]["call_id"] == "call_w1"
    assert json.loads(output_event["item"]["output"]) == {"city": "Paris", "forecast": "sunny"}
    assert len(hook.requests) == 1 and hook.requests[0][3]
    # response.create comes after the output, once.
    kinds = [e["type"] for e in backend.received if e["type"] != "input_audio_buffer.append"]
    assert kinds.count("response.create") == 1
    assert kinds.index("conversation.item.create") < kinds.index("response.create")
    statuses = [(e["name"], e["kind"], e["status"]) for e in client.events_of("tool")]
    assert statuses == [("get_weather", "server", "started"), ("get_weather", "server", "done")]
    assert client.events_of("tool_call") == []  # only client tools reach the page
