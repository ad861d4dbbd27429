"""Demo links over HTTP: pages, embedding rules, session admission and locked persona fields."""

from __future__ import annotations

import html
import time
from datetime import timedelta
from typing import Any

import pytest
from aiortc import RTCSessionDescription

from web.links import Limits, LinkCreate, LinkSigner, Persona
from web.links.model import utcnow

from .conftest import LiveServer, live_app, wait_until
from .media import ClientPeer
from .realtime_server import recording_server

pytestmark = pytest.mark.integration

SHOP = "http://shop.example.test:8080"


async def add_link(live: LiveServer, slug: str = "shop", **fields: Any) -> None:
    values: dict[str, Any] = {
        "slug": slug,
        "title": "Shop helper",
        "description": "Ask about opening hours.",
        "persona": Persona(
            instructions="You are Sam from the shop.", voice="v-sam", greeting="Hi!"
        ),
        "allowed_origins": [SHOP],
    }
    values.update(fields)
    await live.app.state.links.create(LinkCreate(**values))


async def offer_json(**extra: Any) -> tuple[ClientPeer, dict[str, Any]]:
    client = ClientPeer()
    offer = await client.offer()
    return client, {"sdp": offer.sdp, "type": "offer", **extra}


async def test_link_pages_render_and_refuse_in_plain_words(live_server: LiveServer) -> None:
    await add_link(live_server)
    await add_link(live_server, "gone")
    await live_server.app.state.links.revoke("gone")
    await add_link(live_server, "old", limits=Limits(expires_at=utcnow() - timedelta(minutes=1)))
    await add_link(live_server, "secret", private=True)
    async with live_server.http() as http:
        page = await http.get("/d/shop")
        embed = await http.get("/embed/shop")
        missing = await http.get("/d/nothing-here")
        revoked = await http.get("/d/gone")
        expired = await http.get("/embed/old")
        private = await http.get("/d/secret")
        home = await http.get("/")
    assert page.status_code == 200
    assert "Shop helper" in page.text and "Ask about opening hours." in page.text
    assert 'data-link="shop"' in html.unescape(page.text)  # the embed snippet
    assert "You are Sam" not in page.text  # instructions stay on the server
    assert page.headers["content-security-policy"].endswith("; frame-ancestors 'self'")
    assert embed.status_code == 200
    assert embed.headers["content-security-policy"].endswith(f"; frame-ancestors 'self' {SHOP}")
    assert missing.status_code == 404 and "no demo called" in missing.text
    assert revoked.status_code == 410 and "switched this demo off" in revoked.text
    assert expired.status_code == 410 and "expired" in expired.text
    assert private.status_code == 403 and "needs its token" in private.text
    assert "Traceback" not in private.text
    assert "/d/shop" in home.text and "/d/secret" not in home.text and "/d/gone" not in home.text


async def test_private_link_token_is_checked(live_server: LiveServer) -> None:
    await add_link(live_server, "secret", private=True)
    signer: LinkSigner = live_server.app.state.signer
    token = signer.issue("secret", ttl_s=600)
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    other = LinkSigner(b"x" * 32).issue("secret", ttl_s=600)
    expired = signer.issue("secret", ttl_s=60, now=time.time() - 120)
    async with live_server.http() as http:
        assert (await http.get(f"/d/secret?token={token}")).status_code == 200
        malformed = "v2.\u0661\u0662.x.y"  # digits, but not ASCII ones
        for bad, words in [
            (forged, "not valid"),
            (other, "not valid"),
            (expired, "expired"),
            (malformed, "malformed"),
        ]:
            response = await http.get(f"/embed/secret?token={bad}")
            assert response.status_code == 403 and words in response.text
        client, body = await offer_json(link="secret", token=forged)
        refused = await http.post("/api/sessions", json=body)
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "bad_token"
        await client.close()
        client, body = await offer_json(link="secret", token=token)
        accepted = await http.post("/api/sessions", json=body)
        assert accepted.status_code == 201, accepted.text
        await http.delete(f"/api/sessions/{accepted.json()['session_id']}")
        await client.close()


async def test_link_sessions_check_origin_state_and_limits(live_server: LiveServer) -> None:
    await add_link(live_server, limits=Limits(max_concurrent=1, sessions_per_hour=2))
    await add_link(live_server, "gone")
    await live_server.app.state.links.revoke("gone")
    async with live_server.http() as http:
        client, body = await offer_json(link="shop")
        foreign = await http.post(
            "/api/sessions", json=body, headers={"Origin": "http://evil.example.test"}
        )
        assert foreign.status_code == 403
        assert foreign.json()["error"]["code"] == "origin_not_allowed"
        no_link = await http.post(
            "/api/sessions", json=body, headers={"Origin": "http://evil.example.test"}
        )
        assert no_link.status_code == 403
        gone = await http.post("/api/sessions", json={**body, "link": "gone"})
        assert gone.status_code == 410
        first = await http.post("/api/sessions", json=body, headers={"Origin": SHOP})
        assert first.status_code == 201, first.text
        session_id = first.json()["session_id"]
        await client.close()

        client, body = await offer_json(link="shop")
        busy = await http.post("/api/sessions", json=body, headers={"Origin": SHOP})
        assert busy.status_code == 429
        assert int(busy.headers["retry-after"]) > 0
        assert "busy" in busy.json()["error"]["message"]
        await http.delete(f"/api/sessions/{session_id}")
        second = await http.post("/api/sessions", json=body, headers={"Origin": SHOP})
        assert second.status_code == 201
        await http.delete(f"/api/sessions/{second.json()['session_id']}")
        await client.close()

        client, body = await offer_json(link="shop")
        quota = await http.post("/api/sessions", json=body)
        assert quota.status_code == 429
        assert "hour" in quota.json()["error"]["message"]
        assert int(quota.headers["retry-after"]) > 3000
        await client.close()


@pytest.mark.settings(sessions_per_ip_per_minute=2)
async def test_sessions_per_address_are_rate_limited(live_server: LiveServer) -> None:
    async with live_server.http() as http:
        ids = []
        for _ in range(2):
            client, body = await offer_json()
            response = await http.post("/api/sessions", json=body)
            assert response.status_code == 201
            ids.append(response.json()["session_id"])
            await client.close()
        client, body = await offer_json()
        refused = await http.post("/api/sessions", json=body)
        await client.close()
        for session_id in ids:
            await http.delete(f"/api/sessions/{session_id}")
    assert refused.status_code == 429
    assert 0 < int(refused.headers["retry-after"]) <= 60
    assert "address" in refused.json()["error"]["message"]


async def test_link_persona_is_locked_against_the_data_channel() -> None:
    async with (
        recording_server("stepfun") as backend,
        live_app(backend="stepfun", backend_url=backend.url, stepfun_api_key="sk-x") as live,
        live.http() as http,
    ):
        await add_link(live, backend="stepfun", model="stepaudio-2.5-realtime")
        client = ClientPeer()
        offer = await client.offer()
        response = await http.post(
            "/api/sessions",
            json={
                "sdp": offer.sdp,
                "type": "offer",
                "link": "shop",
                # Extra fields a visitor might try are not part of the request model.
                "instructions": "You are a pirate.",
                "voice": "other",
            },
        )
        assert response.status_code == 201
        body = response.json()
        await client.pc.setRemoteDescription(RTCSessionDescription(body["sdp"], body["type"]))
        update = await backend.wait_for("session.update")
        greeting = await backend.wait_for("response.create")
        await wait_until(lambda: client.pc.connectionState == "connected", timeout_s=10)
        await wait_until(lambda: client.channel is not None and client.channel.readyState == "open")
        client.send({"type": "session.update", "session": {"instructions": "You are a pirate."}})
        client.send({"type": "response.create", "response": {"instructions": "Be a pirate."}})
        await wait_until(lambda: len(client.events_of("error")) >= 2)
        await http.delete(f"/api/sessions/{body['session_id']}")
        await client.close()
    assert update["session"]["instructions"] == "You are Sam from the shop."
    assert update["session"]["voice"] == "v-sam"
    assert "Hi!" in greeting["response"]["instructions"]
    assert len(backend.of_type("session.update")) == 1
    assert len(backend.of_type("response.create")) == 1
    assert all(
        e["code"] == "invalid_client_event" and "not allowed" in e["detail"]
        for e in client.events_of("error")
    )
