"""Admin API for demo links: off without a token, bearer-protected, full create/list/revoke."""

from __future__ import annotations

import pytest

from .conftest import live_app

pytestmark = pytest.mark.integration

ADMIN = {"Authorization": "Bearer admin-token-0123456789"}


async def test_admin_api_is_off_without_a_token() -> None:
    async with live_app() as live, live.http() as http:
        response = await http.get("/api/admin/links", headers=ADMIN)
    assert response.status_code == 404
    assert "VOICE_RELAY_ADMIN_TOKEN" in response.json()["error"]["message"]


async def test_admin_api_rejects_a_wrong_token() -> None:
    async with live_app(admin_token="admin-token-0123456789") as live, live.http() as http:
        wrong = await http.get("/api/admin/links", headers={"Authorization": "Bearer nope"})
        missing = await http.get("/api/admin/links")
    assert wrong.status_code == missing.status_code == 401
    assert wrong.json()["error"]["code"] == "unauthorized"


async def test_admin_api_manages_links() -> None:
    async with (
        live_app(
            admin_token="admin-token-0123456789", public_url="https://relay.example.org"
        ) as live,
        live.http() as http,
    ):
        listed = await http.get("/api/admin/links", headers=ADMIN)
        assert {"concierge", "language-partner", "storyteller"} <= {
            item["link"]["slug"] for item in listed.json()
        }
        body = {
            "slug": "shop-helper",
            "title": "Shop helper",
            "persona": {"instructions": "You are Sam.", "voice": "alloy", "language": "en"},
            "limits": {"max_concurrent": 2, "sessions_per_hour": 10},
            "allowed_origins": ["https://shop.example.org"],
        }
        created = await http.post("/api/admin/links", json=body, headers=ADMIN)
        assert created.status_code == 201, created.text
        out = created.json()
        assert out["share"]["share_url"] == "https://relay.example.org/d/shop-helper"
        assert 'data-link="shop-helper"' in out["share"]["embed_snippet"]
        duplicate = await http.post("/api/admin/links", json=body, headers=ADMIN)
        assert duplicate.status_code == 409
        invalid = await http.post(
            "/api/admin/links", json={**body, "slug": "Bad Slug"}, headers=ADMIN
        )
        assert invalid.status_code == 422
        assert "slug" in invalid.json()["error"]["message"]
        patched = await http.patch(
            "/api/admin/links/shop-helper", json={"title": "Shop"}, headers=ADMIN
        )
        assert patched.json()["link"]["title"] == "Shop"
        assert patched.json()["link"]["persona"]["instructions"] == "You are Sam."
        token = await http.post(
            "/api/admin/links/shop-helper/tokens", json={"ttl_s": 60}, headers=ADMIN
        )
        assert token.status_code == 201
        assert "?token=v2.60." in token.json()["share"]["share_url"]
        revoked = await http.delete("/api/admin/links/shop-helper", headers=ADMIN)
        assert revoked.json()["link"]["revoked_at"] is not None
        missing = await http.get("/api/admin/links/nothing", headers=ADMIN)
        assert missing.status_code == 404
