"""HTTP hardening, against the real uvicorn server.

Pins: malformed bodies and tokens get a JSON 4xx (never a 500); admin routes authenticate
before reading a body; every body is bounded (declared or chunked); only our own host names are
answered (DNS rebinding) and asset URLs never carry the request's host; X-Forwarded-* count only
from a trusted proxy; every page carries a CSP, nosniff and a referrer policy.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from web.links import LinkCreate

from .conftest import LiveServer, live_app
from .media import ClientPeer

pytestmark = pytest.mark.integration

ADMIN_TOKEN = "admin-token-0123456789"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
JSON = {"content-type": "application/json"}
SHOP = "https://shop.example.test"
SIGNATURE = "A" * 43


def assert_json_error(response: httpx.Response, status: int | None = None) -> dict[str, Any]:
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    if status is not None:
        assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] and error["message"]
    return error


async def offer_sdp() -> str:
    client = ClientPeer()
    try:
        return (await client.offer()).sdp
    finally:
        await client.close()


async def raw_request(live: LiveServer, head: str, body: bytes = b"", read_s: float = 5.0) -> bytes:
    """Sends `head` (and `body`) on a plain socket; returns what the server answered at once."""
    parts = urlsplit(live.url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        writer.write(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        await writer.drain()
        return await asyncio.wait_for(reader.read(65536), read_s)
    finally:
        writer.close()


@pytest.mark.parametrize(
    "path",
    ["/api/sessions", "/api/admin/links", "/api/admin/links/concierge"],
)
@pytest.mark.parametrize(
    "body", ["[" * 30000, '{"sdp": "\\ud800"}', '{"slug": "x", "title": "\\ud800"}', "\xff{"]
)
async def test_malformed_bodies_get_a_json_4xx(path: str, body: str) -> None:
    method = "PATCH" if path.endswith("concierge") else "POST"
    async with live_app(admin_token=ADMIN_TOKEN) as live, live.http() as http:
        response = await http.request(
            method, path, content=body.encode("utf-8", "surrogatepass"), headers={**JSON, **ADMIN}
        )
        assert_json_error(response)
        assert (await http.get("/healthz")).status_code == 200


async def test_session_offers_with_unusable_text_get_a_4xx() -> None:
    sdp = json.dumps(await offer_sdp())
    async with live_app() as live, live.http() as http:
        await live.app.state.links.create(LinkCreate(slug="secret", title="S", private=True))
        for extra in ('"link": "\\ud800"', '"link": "secret", "token": "\\udfff"'):
            body = f'{{"sdp": {sdp}, {extra}}}'
            response = await http.post("/api/sessions", content=body, headers=JSON)
            error = assert_json_error(response, 400)
            assert "Invalid JSON" in error["message"]  # pydantic refuses a lone surrogate


BAD_TOKENS = [
    "v1.%C2%B2.AAAA",
    "v2." + "9" * 5000 + ".AAAAAA." + SIGNATURE,
    "v2.%D9%A3%D9%A0.AAAAAA." + SIGNATURE,  # Arabic-Indic digits
    "v2.60.AAAAAA." + "%C2%B2" * 43,
    "v2.60.AAAAAA." + SIGNATURE + "%0A",
    "v2.0.AAAAAA." + SIGNATURE,
    "v2....",
    "%ED%A0%80",
]


async def test_malformed_private_link_tokens_get_403_everywhere() -> None:
    sdp = await offer_sdp()
    async with live_app() as live, live.http() as http:
        await live.app.state.links.create(LinkCreate(slug="secret", title="S", private=True))
        for token in BAD_TOKENS:
            for page in ("/d/secret", "/embed/secret"):
                response = await http.get(f"{page}?token={token}")
                assert response.status_code == 403, (page, token, response.status_code)
                assert "token" in response.text
            session = await http.post(
                f"/api/sessions?link=secret&token={token}",
                content=sdp,
                headers={"content-type": "application/sdp"},
            )
            assert assert_json_error(session, 403)["code"] == "bad_token", token


@pytest.mark.parametrize(
    "change",
    [
        {"title": None},
        {"limits": None},
        {"persona": None},
        {"allowed_origins": None},
        {"allowed_origins": ["x"]},
        {"allowed_origins": [SHOP + "\n"]},
        {"allowed_origins": ["https://shop.example:\u0663"]},
    ],
)
async def test_admin_patch_refuses_unusable_fields_with_422(change: dict[str, Any]) -> None:
    async with live_app(admin_token=ADMIN_TOKEN) as live, live.http() as http:
        response = await http.patch("/api/admin/links/concierge", json=change, headers=ADMIN)
        error = assert_json_error(response, 422)
        assert next(iter(change)) in error["message"]


async def test_admin_patch_still_clears_backend_and_model() -> None:
    async with live_app(admin_token=ADMIN_TOKEN) as live, live.http() as http:
        response = await http.patch(
            "/api/admin/links/concierge", json={"model": None, "backend": None}, headers=ADMIN
        )
        assert response.status_code == 200, response.text


async def test_link_expiry_without_a_zone_is_utc_and_pages_still_render() -> None:
    async with live_app(admin_token=ADMIN_TOKEN) as live, live.http() as http:
        body = {"slug": "naive", "title": "N", "limits": {"expires_at": "2999-01-01T00:00:00"}}
        created = await http.post("/api/admin/links", json=body, headers=ADMIN)
        assert created.status_code == 201, created.text
        assert created.json()["link"]["limits"]["expires_at"].endswith("Z")
        assert (await http.get("/")).status_code == 200
        assert (await http.get("/d/naive")).status_code == 200


async def test_admin_routes_authenticate_before_reading_the_body() -> None:
    async with live_app(admin_token=ADMIN_TOKEN) as live, live.http() as http:
        invalid = await http.post("/api/admin/links", content=b"{not json", headers=JSON)
        assert assert_json_error(invalid, 401)["code"] == "unauthorized"
        # 200 MB declared and never sent: refused at once instead of waiting to read it.
        answer = await raw_request(
            live,
            "POST /api/admin/links HTTP/1.1\nHost: 127.0.0.1\nContent-Type: application/json\n"
            "Content-Length: 209715200\n",
        )
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert b'"body_too_large"' in answer


@pytest.mark.parametrize(
    ("path", "headers"),
    [("/api/sessions", ""), ("/api/admin/links", f"Authorization: Bearer {ADMIN_TOKEN}\n")],
)
async def test_a_chunked_body_past_the_limit_is_refused_while_it_is_sent(
    path: str, headers: str
) -> None:
    """The server answers 413 after the limit without waiting for the rest of the body."""
    chunk = b"[" * 65536
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(6))  # 384 KiB, unended
    async with live_app(admin_token=ADMIN_TOKEN) as live:
        answer = await raw_request(
            live,
            f"POST {path} HTTP/1.1\nHost: 127.0.0.1\nContent-Type: application/json\n"
            f"{headers}Transfer-Encoding: chunked\n",
            chunked,
        )
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert b'"body_too_large"' in answer
        async with live.http() as http:
            assert (await http.get("/healthz")).status_code == 200


async def test_oversized_request_headers_are_refused() -> None:
    """Headers still arriving past 16 KiB are refused instead of buffered."""
    async with live_app() as live:
        head = f"GET / HTTP/1.1\nHost: 127.0.0.1\nX-Big: {'a' * 20000}"
        answer = await raw_request(live, head)  # no blank line: the headers never end
    assert answer.startswith(b"HTTP/1.1 400"), answer[:100]


async def test_foreign_host_names_are_refused() -> None:
    """DNS rebinding: a page on evil.example resolving to us must not pass as our own page."""
    sdp = await offer_sdp()
    async with live_app() as live, live.http() as http:
        evil = {"Host": "evil.example", "Origin": "http://evil.example"}
        session = await http.post("/api/sessions", json={"sdp": sdp}, headers=evil)
        page = await http.get("/", headers={"Host": "evil.example"})
        port = urlsplit(live.url).port
        local = await http.get("/", headers={"Host": f"localhost:{port}"})
    assert assert_json_error(session, 400)["code"] == "host_not_allowed"
    assert_json_error(page, 400)
    assert local.status_code == 200
    assert "evil.example" not in local.text and 'href="/static/talk.css"' in local.text


async def test_the_public_url_host_is_answered_and_used_for_share_urls() -> None:
    async with (
        live_app(admin_token=ADMIN_TOKEN, public_url="https://talk.example.org") as live,
        live.http() as http,
    ):
        page = await http.get("/d/concierge", headers={"Host": "talk.example.org"})
        other = await http.get("/d/concierge", headers={"Host": "other.example.org"})
        shown = await http.get("/api/admin/links/concierge", headers=ADMIN)
    assert page.status_code == 200 and other.status_code == 400
    assert "https://talk.example.org/d/concierge" in page.text
    assert shown.json()["share"]["share_url"] == "https://talk.example.org/d/concierge"


async def post_offers(live: LiveServer, forwarded_for: list[str]) -> list[int]:
    statuses = []
    async with live.http() as http:
        for address in forwarded_for:
            headers = {"X-Forwarded-For": address, "X-Forwarded-Proto": "https"}
            response = await http.post(
                "/api/sessions", json={"sdp": await offer_sdp()}, headers=headers
            )
            statuses.append(response.status_code)
            if response.status_code == 201:
                await http.delete(f"/api/sessions/{response.json()['session_id']}")
    return statuses


async def test_forwarded_for_is_ignored_without_a_trusted_proxy() -> None:
    async with live_app(sessions_per_ip_per_minute=1) as live:
        statuses = await post_offers(live, ["203.0.113.1", "203.0.113.2"])
    assert statuses == [201, 429]


async def test_forwarded_for_from_a_trusted_proxy_is_the_client_address() -> None:
    async with live_app(sessions_per_ip_per_minute=1, trusted_proxies=["127.0.0.0/8"]) as live:
        statuses = await post_offers(live, ["203.0.113.1", "203.0.113.2", "203.0.113.1"])
    assert statuses == [201, 201, 429]


async def test_every_page_has_security_headers_and_only_embeds_are_framed_elsewhere() -> None:
    async with live_app() as live, live.http() as http:
        await live.app.state.links.create(
            LinkCreate(slug="shop", title="Shop", allowed_origins=[SHOP])
        )
        responses = {
            path: await http.get(path)
            for path in ("/", "/d/shop", "/embed/shop", "/d/missing", "/healthz", "/widget.js")
        }
    for path, response in responses.items():
        policy = response.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "style-src 'self'" in policy, path
        assert response.headers["x-content-type-options"] == "nosniff", path
        assert response.headers["referrer-policy"] == "same-origin", path
        expected = (
            f"frame-ancestors 'self' {SHOP}" if path == "/embed/shop" else "frame-ancestors 'self'"
        )
        assert policy.endswith(expected), (path, policy)
