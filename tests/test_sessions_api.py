"""Signalling over HTTP: JSON and raw SDP offers, hang-up, and clear 4xx errors for bad input."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from aiortc import RTCRtpSender, RTCSessionDescription

from .conftest import LiveServer, wait_until
from .media import ClientPeer

pytestmark = pytest.mark.integration


async def test_json_offer_gets_answer_and_delete_hangs_up(live_server: LiveServer) -> None:
    client = ClientPeer()
    async with live_server.http() as http:
        body = await client.connect(http)
        assert body["type"] == "answer" and body["sdp"].startswith("v=0")
        assert body["session_id"] in live_server.registry
        await wait_until(lambda: client.pc.connectionState == "connected")
        response = await http.delete(f"/api/sessions/{body['session_id']}")
        assert response.status_code == 204
        assert body["session_id"] not in live_server.registry
        again = await http.delete(f"/api/sessions/{body['session_id']}")
        assert again.status_code == 404
        assert again.json()["error"]["code"] == "session_not_found"
    await client.close()


async def test_raw_sdp_offer_is_answered_in_kind(live_server: LiveServer) -> None:
    client = ClientPeer()
    offer = await client.offer()
    async with live_server.http() as http:
        response = await http.post(
            "/api/sessions", content=offer.sdp, headers={"Content-Type": "application/sdp"}
        )
        assert response.status_code == 201
        assert response.headers["content-type"].startswith("application/sdp")
        location = response.headers["location"]
        assert location.startswith("/api/sessions/")
        await client.pc.setRemoteDescription(RTCSessionDescription(response.text, "answer"))
        await wait_until(lambda: client.pc.connectionState == "connected")
        assert (await http.delete(location)).status_code == 204
    await client.close()


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        (b'{"sdp": "hello", "type": "offer"}', "application/json", 400, "bad_offer"),
        (b"not json", "application/json", 400, "bad_offer"),
        (b'{"type": "offer"}', "application/json", 400, "bad_offer"),
        (b'{"sdp": "v=0\\r\\n", "type": "answer"}', "application/json", 400, "bad_offer"),
        (b'{"sdp": "v=0\\r\\ns=-\\r\\n", "type": "offer"}', "application/json", 400, "bad_offer"),
        (
            b"v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n",
            "application/sdp",
            400,
            "bad_offer",
        ),
        (b"sdp", "text/plain", 415, "unsupported_media_type"),
        (b"x" * 70_000, "application/json", 413, "body_too_large"),
    ],
)
async def test_bad_offers_get_a_clear_4xx(
    live_server: LiveServer, body: bytes, content_type: str, status: int, code: str
) -> None:
    async with live_server.http() as http:
        response = await http.post(
            "/api/sessions", content=body, headers={"Content-Type": content_type}
        )
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert len(error["message"]) > 10
    assert len(live_server.registry) == 0


def prefer(client: ClientPeer, *mime_types: str) -> None:
    """Offer only these audio codecs, in this order (as a SIP gateway or an old client might)."""
    codecs = RTCRtpSender.getCapabilities("audio").codecs
    chosen = [c for m in mime_types for c in codecs if c.mimeType.lower() == m]
    client.pc.getTransceivers()[0].setCodecPreferences(chosen)


def audio_codecs(sdp: str) -> list[str]:
    return [
        line.split(" ", 1)[1].split("/")[0].lower()
        for line in sdp.splitlines()
        if line.startswith("a=rtpmap:")
    ]


async def test_an_offer_without_opus_gets_a_clear_400(live_server: LiveServer) -> None:
    client = ClientPeer()
    prefer(client, "audio/pcmu", "audio/pcma")
    try:
        offer = await client.offer()
        async with live_server.http() as http:
            response = await http.post("/api/sessions", json={"sdp": offer.sdp, "type": "offer"})
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == "bad_offer"
        assert "Opus" in response.json()["error"]["message"]
        assert len(live_server.registry) == 0
    finally:
        await client.close()


def without_data_channel(sdp: str) -> str:
    return sdp.split("\r\nm=application", 1)[0] + "\r\n"


@pytest.mark.parametrize(
    ("mangle", "words"),
    [
        (lambda sdp: sdp.replace("a=mid:0", "a=mid:x"), "not in its BUNDLE group"),
        (lambda sdp: without_data_channel(sdp).replace("BUNDLE 0 1", "BUNDLE 1 0"), "mid '1'"),
        (lambda sdp: sdp.replace("a=mid:0\r\n", ""), "no a=mid"),
        (lambda sdp: sdp.replace("a=mid:1", "a=mid:0"), "two m= sections with mid '0'"),
    ],
    ids=["mid-outside-bundle", "no-application-but-bundled", "no-mid", "same-mid-twice"],
)
async def test_an_offer_with_inconsistent_bundle_gets_a_clear_400(
    live_server: LiveServer, mangle: Callable[[str], str], words: str
) -> None:
    client = ClientPeer()
    offer = (await client.offer()).sdp
    await client.close()
    assert "a=group:BUNDLE 0 1\r\n" in offer and "a=mid:1\r\n" in offer
    async with live_server.http() as http:
        response = await http.post("/api/sessions", json={"sdp": mangle(offer), "type": "offer"})
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == "bad_offer"
        assert words in response.json()["error"]["message"]
        assert len(live_server.registry) == 0
        # An offer without a data channel, consistently bundled, is still answered.
        audio_only = without_data_channel(offer).replace("BUNDLE 0 1", "BUNDLE 0")
        response = await http.post("/api/sessions", json={"sdp": audio_only, "type": "offer"})
        assert response.status_code == 201, response.text
        await http.delete(f"/api/sessions/{response.json()['session_id']}")


async def test_opus_is_answered_even_when_offered_after_g711(live_server: LiveServer) -> None:
    client = ClientPeer()
    prefer(client, "audio/pcmu", "audio/opus")
    try:
        async with live_server.http() as http:
            body = await client.connect(http)
            assert audio_codecs(body["sdp"]) == ["opus"]  # the relay's playout is Opus packets
            await wait_until(lambda: client.pc.connectionState == "connected", timeout_s=10)
            await http.delete(f"/api/sessions/{client.session_id}")
    finally:
        await client.close()


async def test_page_config_carries_no_secret() -> None:
    from .conftest import live_app

    async with (
        live_app(backend="stepfun", stepfun_api_key="sk-very-secret") as live,
        live.http() as http,
    ):
        page = await http.get("/")
    assert page.status_code == 200
    assert "sk-very-secret" not in page.text
    assert 'type="module"' in page.text
