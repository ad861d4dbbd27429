"""Several instances on one Redis (VOICE_RELAY_REDIS_URL): the same links, limits counted once,
and a clear 503 for new sessions while Redis is gone. A real redis-server runs as a child."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from web.cli import main

from .cluster import ADMIN, ADMIN_TOKEN, SECRET_KEY, RedisServer
from .conftest import LiveServer, live_app, wait_until
from .media import ClientPeer

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which("redis-server") is None,
        reason="redis-server is not installed (Debian package redis-server)",
    ),
]


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def two_instances(stack: AsyncExitStack, url: str, **overrides: Any) -> list[LiveServer]:
    """Two relays, each with its own data directory, sharing only Redis."""
    return [
        await stack.enter_async_context(
            live_app(redis_url=url, admin_token=ADMIN_TOKEN, secret_key=SECRET_KEY, **overrides)
        )
        for _ in range(2)
    ]


async def offer_json(**extra: Any) -> tuple[ClientPeer, dict[str, Any]]:
    client = ClientPeer()
    offer = await client.offer()
    return client, {"sdp": offer.sdp, "type": "offer", **extra}


async def start_session(live: LiveServer, **extra: Any) -> tuple[int, dict[str, Any]]:
    """POSTs one offer; (status, JSON body). The peer is closed at once: only admission counts."""
    client, body = await offer_json(**extra)
    try:
        async with live.http() as http:
            response = await http.post("/api/sessions", json=body)
    finally:
        await client.close()
    return response.status_code, response.json()


async def create_link(live: LiveServer, slug: str, **fields: Any) -> None:
    body = {"slug": slug, "title": slug.title(), **fields}
    async with live.http() as http:
        response = await http.post("/api/admin/links", json=body, headers=ADMIN)
    assert response.status_code == 201, response.text


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any]:
    code = main(["links", *args, "--json"])
    out = capsys.readouterr().out
    return code, json.loads(out) if code == 0 else None


@pytest.fixture
def redis_env(
    redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> RedisServer:
    # The CLI reads its settings from the environment, like a deployment would.
    monkeypatch.setenv("VOICE_RELAY_REDIS_URL", redis_server.url)
    monkeypatch.setenv("VOICE_RELAY_SECRET_KEY", SECRET_KEY)
    monkeypatch.setenv("VOICE_RELAY_DATA_DIR", str(tmp_path / "cli"))
    return redis_server


async def test_links_are_shared_by_instances_and_the_cli(
    redis_env: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    async with AsyncExitStack() as stack:
        a, b = await two_instances(stack, redis_env.url)
        await create_link(a, "shop")
        async with b.http() as http:
            assert (await http.get("/d/shop")).status_code == 200
            revoked = await http.delete("/api/admin/links/shop", headers=ADMIN)
            assert revoked.status_code == 200, revoked.text
        async with a.http() as http:
            assert (await http.get("/d/shop")).status_code == 410
        status, body = await start_session(a, link="shop")
        assert status == 410, body

        # The CLI, another process in a deployment, reads and writes the same links.
        code, listed = await asyncio.to_thread(cli, capsys, "list")
        assert code == 0
        states = {item["link"]["slug"]: item["link"]["revoked_at"] for item in listed}
        assert states["shop"] is not None
        code, _ = await asyncio.to_thread(cli, capsys, "create", "promo", "--title", "Promo")
        assert code == 0
        async with b.http() as http:
            assert (await http.get("/d/promo")).status_code == 200
        async with a.http() as http:
            shown = await http.get("/api/admin/links/promo", headers=ADMIN)
        assert shown.json()["link"]["title"] == "Promo"


async def test_hourly_quota_and_address_rate_are_counted_once(redis_server: RedisServer) -> None:
    async with AsyncExitStack() as stack:
        a, b = await two_instances(stack, redis_server.url, sessions_per_ip_per_minute=3)
        await create_link(a, "shop", limits={"max_concurrent": 5, "sessions_per_hour": 2})
        ids: list[tuple[LiveServer, str]] = []
        for live in (a, b):
            status, body = await start_session(live, link="shop")
            assert status == 201, body
            ids.append((live, body["session_id"]))
        for live in (a, b):
            status, body = await start_session(live, link="shop")
            assert status == 429, body
            assert "hour" in body["error"]["message"]
        # Refused for the link's sake, those did not use the address's rate: one is left.
        status, body = await start_session(b)
        assert status == 201, body
        ids.append((b, body["session_id"]))
        for live in (a, b):
            status, body = await start_session(live)
            assert status == 429, body
            assert "address" in body["error"]["message"]
        for live, session_id in ids:
            async with live.http() as http:
                await http.delete(f"/api/sessions/{session_id}")


async def test_a_lost_redis_refuses_new_sessions_and_spares_running_ones(
    redis_server: RedisServer,
) -> None:
    async with live_app(redis_url=redis_server.url, secret_key=SECRET_KEY) as live:
        client = ClientPeer()
        async with live.http() as http:
            running = await client.connect(http)
        await wait_until(lambda: client.pc.connectionState == "connected", timeout_s=10)
        redis_server.stop()
        refused_client, offer = await offer_json()
        async with live.http() as http:
            refused = await http.post("/api/sessions", json=offer)
        await refused_client.close()
        assert refused.status_code == 503, refused.text
        assert int(refused.headers["retry-after"]) > 0
        body = refused.json()
        assert body["error"]["code"] == "shared_state_unavailable"
        assert "Redis" in body["error"]["message"]
        async with live.http() as http:
            page = await http.get("/d/concierge")
        assert page.status_code == 503
        assert running["session_id"] in live.registry
        assert client.pc.connectionState == "connected"
        await client.close()
