"""GET /api/ice-servers: ICE servers for a page's next call, TURN credentials minted for it.

- TURN credentials follow the TURN REST API (username `<expiry>:<id>`, credential
  base64(HMAC-SHA1(secret, username))), and Debian's coturn with `use-auth-secret` allocates
  with them (and refuses expired or forged ones);
- the answer has the static servers too, the ttl, `Cache-Control: no-store`, fresh credentials
  each time, and never the secret; pages carry no ICE servers or credentials at all;
- requests are rate-limited per client address (429 with Retry-After);
- for a demo link, a foreign origin is refused and the link's own one allowed, and a private
  link's token is checked, as for session creation;
- the server's own peer connections use the STUN servers only, never TURN.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aioice.turn
import pytest
from aioice import stun

from web.backend import session_options
from web.links import LinkCreate, LinkSigner, Persona

from .conftest import LiveServer, live_app, make_settings
from .media import LOOPBACK

pytestmark = pytest.mark.integration

SECRET = "test-shared-secret-8c1f"
TURN_URLS = "turn:turn.example.org:3478?transport=udp,turns:turn.example.org:443?transport=tcp"
STUN = {"urls": "stun:stun.example.org:3478"}
SHOP = "https://shop.example.test"


def rest_credential(secret: str, username: str) -> str:
    return base64.b64encode(
        hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    ).decode()


@pytest.fixture
async def turn_server() -> AsyncIterator[LiveServer]:
    async with live_app(
        turn_secret=SECRET, turn_urls=TURN_URLS, turn_ttl_s=900, ice_servers=[STUN]
    ) as live:
        yield live


async def test_turn_credentials_follow_the_turn_rest_api(turn_server: LiveServer) -> None:
    async with turn_server.http() as http:
        first = await http.get("/api/ice-servers")
        second = await http.get("/api/ice-servers")
    assert first.status_code == 200, first.text
    assert first.headers["cache-control"] == "no-store"
    body = first.json()
    assert body["ttl"] == 900
    stun_server, turn = body["iceServers"]
    assert stun_server == STUN
    assert turn["urls"] == TURN_URLS.split(",")
    expiry, _, user_id = turn["username"].partition(":")
    assert abs(int(expiry) - (time.time() + 900)) < 5 and user_id
    assert turn["credential"] == rest_credential(SECRET, turn["username"])
    assert second.json()["iceServers"][1]["username"] != turn["username"]
    assert SECRET not in first.text


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def coturn(tmp_path: Path) -> Iterator[tuple[str, int]]:
    if shutil.which("turnserver") is None:
        pytest.skip("needs coturn (apt-get install coturn)")
    port = free_udp_port()
    config = tmp_path / "turnserver.conf"
    config.write_text(
        "\n".join(
            [
                f"listening-ip={LOOPBACK}",
                f"relay-ip={LOOPBACK}",
                f"listening-port={port}",
                "fingerprint",
                "use-auth-secret",
                f"static-auth-secret={SECRET}",
                "realm=voice-relay.test",
                "no-cli",
                "no-tls",
                "no-dtls",
                f"userdb={tmp_path / 'turndb'}",
                f"pidfile={tmp_path / 'turnserver.pid'}",
                f"log-file={tmp_path / 'turn.log'}",
                "simple-log",
                "",
            ]
        )
    )
    process = subprocess.Popen(
        ["turnserver", "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        yield LOOPBACK, port
    finally:
        process.terminate()
        process.wait(10)


async def allocate(server: tuple[str, int], username: str, credential: str) -> tuple[str, int]:
    transport, _ = await aioice.turn.create_turn_endpoint(
        asyncio.DatagramProtocol, server_addr=server, username=username, password=credential
    )
    try:
        relayed: tuple[str, int] = transport.get_extra_info("sockname")
        return relayed
    finally:
        transport.close()


async def allocate_once_listening(server: tuple[str, int], username: str, credential: str) -> Any:
    deadline = time.monotonic() + 10
    while True:
        try:
            return await allocate(server, username, credential)
        except (ConnectionError, TimeoutError, stun.TransactionTimeout):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def test_coturn_allocates_with_the_minted_credentials_only(
    turn_server: LiveServer, coturn: tuple[str, int]
) -> None:
    async with turn_server.http() as http:
        turn = (await http.get("/api/ice-servers")).json()["iceServers"][1]
    relayed = await allocate_once_listening(coturn, turn["username"], turn["credential"])
    assert relayed[0] == LOOPBACK
    expired = f"{int(time.time()) - 60}:{turn['username'].split(':')[1]}"
    with pytest.raises(stun.TransactionFailed):
        await allocate(coturn, expired, rest_credential(SECRET, expired))
    with pytest.raises(stun.TransactionFailed):
        await allocate(
            coturn, turn["username"], rest_credential("another secret", turn["username"])
        )


@pytest.mark.settings(sessions_per_ip_per_minute=1)
async def test_requests_are_rate_limited_per_client(live_server: LiveServer) -> None:
    async with live_server.http() as http:
        answers = [await http.get("/api/ice-servers") for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[3].json()["error"]["code"] == "rate_limited"
    assert int(answers[3].headers["retry-after"]) >= 1


async def test_links_origins_and_tokens_are_checked(live_server: LiveServer) -> None:
    store = live_server.app.state.links
    persona = Persona(instructions="You are Sam.")
    await store.create(
        LinkCreate(slug="shop", title="Shop", persona=persona, allowed_origins=[SHOP])
    )
    await store.create(LinkCreate(slug="secret", title="Secret", persona=persona, private=True))
    signer: LinkSigner = live_server.app.state.signer
    foreign = {"Origin": "https://elsewhere.example.test"}
    async with live_server.http() as http:
        from_shop = await http.get("/api/ice-servers?link=shop", headers={"Origin": SHOP})
        from_elsewhere = await http.get("/api/ice-servers?link=shop", headers=foreign)
        no_link_elsewhere = await http.get("/api/ice-servers", headers=foreign)
        no_token = await http.get("/api/ice-servers?link=secret")
        token = signer.issue("secret", ttl_s=600)
        with_token = await http.get("/api/ice-servers", params={"link": "secret", "token": token})
        missing = await http.get("/api/ice-servers?link=nothing-here")
    assert from_shop.status_code == 200 and from_shop.json()["iceServers"] == []
    assert from_elsewhere.status_code == 403
    assert from_elsewhere.json()["error"]["code"] == "origin_not_allowed"
    assert no_link_elsewhere.status_code == 403
    assert no_token.status_code == 403 and no_token.json()["error"]["code"] == "bad_token"
    assert with_token.status_code == 200
    assert missing.status_code == 404


async def test_pages_carry_no_ice_servers_or_credentials() -> None:
    fixed = {"urls": "turn:fixed.example.org", "username": "u", "credential": "fixed-pass-91"}
    async with (
        live_app(turn_secret=SECRET, turn_urls=TURN_URLS, ice_servers=[fixed]) as live,
        live.http() as http,
    ):
        pages = [await http.get(path) for path in ("/", "/d/concierge", "/embed/concierge")]
        served = (await http.get("/api/ice-servers")).json()["iceServers"]
    assert served[0] == fixed  # an operator's fixed TURN account: from the endpoint only
    for page in pages:
        assert page.status_code == 200
        assert "/api/ice-servers" in page.text
        for secret in (SECRET, "fixed-pass-91", "fixed.example.org", "turn.example.org"):
            assert secret not in page.text


def test_the_server_uses_stun_only() -> None:
    settings = make_settings(
        turn_secret=SECRET,
        turn_urls=TURN_URLS,
        ice_servers=[
            {"urls": ["stun:stun.example.org:3478", "turn:fixed.example.org"], "username": "u",
             "credential": "p"},
            {"urls": "turn:fixed.example.org:3478", "username": "u", "credential": "p"},
        ],
    )  # fmt: skip
    servers = session_options(settings).ice_servers
    assert [(s.urls, s.username, s.credential) for s in servers] == [
        (["stun:stun.example.org:3478"], None, None)
    ]
