"""Fuzzing the HTTP API in-process: no input makes the server fail.

schemathesis generates requests from the app's own OpenAPI schema, with and without the admin
token; hypothesis generates malformed offers (JSON and raw SDP) for `POST /api/sessions`, which
reads its body itself. Each answer must be below 500, every API error JSON with a code and a
message, and the server must still answer a health request. Bounded by example counts, so the
whole file runs in well under a minute.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import hypothesis.strategies as st
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from schemathesis.python.asgi import shutdown_lifespans

from web.app import create_app

from .conftest import live_app, make_settings
from .media import ClientPeer

pytestmark = pytest.mark.integration

ADMIN_TOKEN = "admin-token-0123456789"
HOST = "testserver"  # what schemathesis' and Starlette's in-process clients send
FUZZ = settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)


def fuzz_app(data_dir: Path) -> FastAPI:
    return create_app(
        make_settings(
            port=8000, data_dir=data_dir, admin_token=ADMIN_TOKEN, allowed_hosts=[HOST, "localhost"]
        )
    )


def check_answer(path: str, status: int, content_type: str, body: bytes) -> None:
    assert status < 500, (path, status, body[:300])
    if status >= 400 and (path.startswith("/api/") or "json" in content_type):
        error = json.loads(body)["error"]
        assert error["code"] and error["message"], (path, body[:300])


# Built at import without running the app: schemathesis starts its lifespan on the first call
# (in a thread of its own) and the fixture below stops it. (schemathesis.pytest.from_fixture
# would be lazier, but reaches a pytest private that pytest 9 no longer has.)
DATA_DIR = tempfile.TemporaryDirectory(prefix="voice-relay-fuzz-")
API = fuzz_app(Path(DATA_DIR.name))
schema = schemathesis.openapi.from_dict(API.openapi())
schema.app = API
schema.location = "/openapi.json"


@pytest.fixture(scope="module", autouse=True)
def _stop_the_fuzzed_app() -> Iterator[None]:
    yield
    shutdown_lifespans()
    DATA_DIR.cleanup()


def call_and_check(case: Any, headers: dict[str, str] | None = None) -> None:
    slug = (case.path_parameters or {}).get("slug")
    if isinstance(slug, str) and len(slug) % 2 == 0:
        # A generated slug names no link (404 before the body counts): aim half at a real one.
        case.path_parameters["slug"] = "concierge"
    response = case.call(headers=headers)
    check_answer(
        case.formatted_path,
        response.status_code,
        response.headers.get("content-type", [""])[0],
        response.content,
    )
    health = case.operation.schema["/healthz"]["GET"].Case().call()
    assert health.status_code == 200


@schema.exclude(path="/widget.js").parametrize()
@FUZZ
def test_api_without_a_token_never_fails(case: Any) -> None:
    call_and_check(case)


@schema.include(path_regex="^/api/admin/").parametrize()
@FUZZ
def test_admin_api_with_the_token_never_fails(case: Any) -> None:
    call_and_check(case, {"Authorization": f"Bearer {ADMIN_TOKEN}"})


@dataclass
class LiveRelay:
    """The whole app served by uvicorn in an event loop of its own, which runs only while a
    request does: synchronous hypothesis tests drive it one request at a time."""

    loop: asyncio.AbstractEventLoop
    http: httpx.AsyncClient
    offer: str  # a real offer, so that the rest of a request is checked too

    def request(self, method: str, path: str, **options: Any) -> httpx.Response:
        return self.loop.run_until_complete(self.http.request(method, path, **options))


async def real_offer() -> str:
    # Made inside the loop: aiortc looks for the running one.
    peer = ClientPeer()
    try:
        return (await peer.offer()).sdp
    finally:
        await peer.close()


@pytest.fixture(scope="module")
def client() -> Iterator[LiveRelay]:
    loop = asyncio.new_event_loop()
    live_context = live_app(admin_token=ADMIN_TOKEN)
    live = loop.run_until_complete(live_context.__aenter__())
    http = live.http()
    offer = loop.run_until_complete(real_offer())
    try:
        yield LiveRelay(loop, http, offer)
    finally:
        loop.run_until_complete(http.aclose())
        loop.run_until_complete(live_context.__aexit__(None, None, None))
        loop.close()


SDP_LINE = st.one_of(
    st.sampled_from(
        [
            "v=0",
            "o=- 1 1 IN IP4 127.0.0.1",
            "s=-",
            "t=0 0",
            "m=audio 9 UDP/TLS/RTP/SAVPF 111",
            "m=audio 9 UDP/TLS/RTP/SAVPF",
            "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
            "a=rtpmap:111 opus/48000/2",
            "a=rtpmap:111 opus/-1/99999999999999999999",
            "a=fingerprint:sha-256 00:11",
            "a=setup:actpass",
            "a=ice-ufrag:x",
            "a=candidate:1 1 udp 1 127.0.0.1 99999 typ host",
            "c=IN IP4 999.1.1.1",
        ]
    ),
    st.text(max_size=80),
)
SDP = st.lists(SDP_LINE, max_size=30).map("\r\n".join)
JSON_VALUE = st.recursive(
    st.none() | st.booleans() | st.floats() | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)
VALID = "<valid offer>"
OFFER = st.fixed_dictionaries(
    {"sdp": st.one_of(st.just(VALID), SDP, JSON_VALUE)},
    optional={
        "type": st.one_of(st.sampled_from(["offer", "answer", "pranswer"]), JSON_VALUE),
        "link": st.one_of(st.sampled_from(["concierge", "nothing", "\ud800"]), JSON_VALUE),
        "token": st.one_of(st.sampled_from(["v2.60.AAAAAA." + "A" * 43, "v1.²"]), JSON_VALUE),
    },
)


def post_offer(client: LiveRelay, content: bytes, content_type: str, query: str = "") -> None:
    response = client.request(
        "POST", f"/api/sessions{query}", content=content, headers={"content-type": content_type}
    )
    check_answer("/api/sessions", response.status_code, "", response.content)
    if response.status_code == 201:
        client.request("DELETE", f"/api/sessions/{response.json()['session_id']}")
    assert client.request("GET", "/healthz").status_code == 200


# Prefixes that make the whole body unusable: none, nesting past any parser's limit, not UTF-8.
PREFIXES = {"none": "", "nested": "[" * 30000, "binary": "\xff"}


@FUZZ
@given(offer=OFFER, prefix=st.sampled_from(sorted(PREFIXES)))
def test_malformed_json_offers_get_a_json_4xx(
    client: LiveRelay, offer: dict[str, Any], prefix: str
) -> None:
    if offer["sdp"] == VALID:
        offer["sdp"] = client.offer
    body = (PREFIXES[prefix] + json.dumps(offer)).encode("utf-8", "surrogatepass")
    post_offer(client, body, "application/json")


@FUZZ
@given(sdp=SDP, link=st.sampled_from(["", "?link=concierge", "?link=%ED%A0%80&token=v1.%C2%B2"]))
def test_malformed_raw_sdp_offers_get_a_json_4xx(client: LiveRelay, sdp: str, link: str) -> None:
    post_offer(client, sdp.encode("utf-8", "surrogatepass"), "application/sdp", link)
