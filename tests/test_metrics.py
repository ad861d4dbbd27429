"""`/metrics`: Prometheus text of one process, fed by real calls, guarded by a token or loopback.

- during a call the active-sessions gauge is 1 with its backend, model and link, and each turn's
  latency lands in the histogram as it is measured; after hang-up the gauge is 0 and the end
  counts by reason;
- a request refused at capacity counts by its code;
- with VOICE_RELAY_METRICS_TOKEN set the bearer is required; without it only loopback clients
  (also behind a trusted proxy) are answered.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from web.app import create_app

from .conftest import LiveServer, make_settings, wait_until
from .media import ClientPeer, SpeechTrack
from .speech import espeak_speech

LOCAL_LABELS = {"backend": "local", "model": "echo", "link": ""}


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample by name and labels; parsing fails the test on malformed text."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(text: str, name: str, **labels: str) -> float | None:
    return samples(text).get((name, frozenset(labels.items())))


async def scrape(http: httpx.AsyncClient, **headers: str) -> str:
    response = await http.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


@pytest.mark.integration
async def test_a_call_shows_in_the_metrics_from_start_to_hang_up(
    live_server: LiveServer, tmp_path: Path
) -> None:
    utterance = espeak_speech("Hello there, this is a test.", tmp_path, words_per_minute=150)
    client = ClientPeer(SpeechTrack(utterance))
    latency = ("voice_relay_turn_latency_seconds_count", {"backend": "local", "model": "echo"})
    async with live_server.http() as http:
        before = await scrape(http)
        assert value(before, "voice_relay_workers", worker="0", pid=str(os.getpid())) == 1
        assert value(before, "voice_relay_max_sessions") == 15
        assert value(before, latency[0], **latency[1]) is None
        await client.connect(http)
        during = await scrape(http)
        assert value(during, "voice_relay_sessions_active", **LOCAL_LABELS) == 1
        assert value(during, "voice_relay_sessions_started_total", **LOCAL_LABELS) == 1

        await wait_until(lambda: bool(client.events_of("latency")), timeout_s=15)
        turn = await scrape(http)  # before the hang-up: observed as measured, not at the end
        assert value(turn, latency[0], **latency[1]) == 1
        seconds = value(turn, "voice_relay_turn_latency_seconds_sum", **latency[1])
        assert seconds == pytest.approx(client.events_of("latency")[0]["ms"] / 1000, rel=0.01)
        assert (value(turn, "voice_relay_event_loop_lag_seconds_count") or 0) >= 1
        assert (value(turn, "process_cpu_seconds_total") or 0) > 0

        assert (await http.delete(f"/api/sessions/{client.session_id}")).status_code == 204
        after = await scrape(http)
    await client.close()
    assert value(after, "voice_relay_sessions_active", **LOCAL_LABELS) == 0
    assert value(after, "voice_relay_sessions_ended_total", reason="hangup") == 1
    # Media counters are added at the session's end: present (zero on loopback) per backend.
    for name in ("uplink_packets_lost", "uplink_packets_concealed", "playout_underruns"):
        assert value(after, f"voice_relay_{name}_total", backend="local") is not None
    assert value(after, "voice_relay_backend_errors_total", backend="local") is None


@pytest.mark.integration
@pytest.mark.settings(max_sessions=1)
async def test_a_refusal_at_capacity_counts_by_its_code(live_server: LiveServer) -> None:
    first, second = ClientPeer(), ClientPeer()
    try:
        async with live_server.http() as http:
            await first.connect(http)
            offer = await second.offer()
            refused = await http.post("/api/sessions", json={"sdp": offer.sdp, "type": "offer"})
            assert refused.status_code == 503
            text = await scrape(http)
            assert value(text, "voice_relay_admission_refusals_total", reason="at_capacity") == 1
            assert value(text, "voice_relay_sessions_active", **LOCAL_LABELS) == 1
            # A refused session never started.
            assert value(text, "voice_relay_sessions_started_total", **LOCAL_LABELS) == 1
            await http.delete(f"/api/sessions/{first.session_id}")
            await wait_until(lambda: len(live_server.registry) == 0)
    finally:
        await first.close()
        await second.close()


def asgi_client(client_ip: str, **settings: Any) -> httpx.AsyncClient:
    """The app over ASGI as if `client_ip` connected (no lifespan: /metrics needs none)."""
    app = create_app(make_settings(**settings))
    transport = httpx.ASGITransport(app=app, client=(client_ip, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1")


async def test_the_token_is_required_when_set(tmp_path: Path) -> None:
    async with asgi_client("203.0.113.9", metrics_token="scrape-me-7", data_dir=tmp_path) as http:
        missing = await http.get("/metrics")
        assert missing.status_code == 401
        assert missing.json()["error"]["code"] == "unauthorized"
        wrong = await http.get("/metrics", headers={"authorization": "Bearer scrape-me-8"})
        assert wrong.status_code == 401
        text = await scrape(http, authorization="Bearer scrape-me-7")
        assert value(text, "voice_relay_max_sessions") == 15


async def test_without_a_token_only_loopback_clients_are_answered(tmp_path: Path) -> None:
    async with asgi_client("203.0.113.9", data_dir=tmp_path) as http:
        refused = await http.get("/metrics")
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "metrics_loopback_only"
    async with asgi_client("::1", data_dir=tmp_path) as http:
        await scrape(http)
    # Behind a trusted proxy on loopback, the forwarded client is the one that counts.
    proxied = {"trusted_proxies": ["127.0.0.1"], "data_dir": tmp_path}
    async with asgi_client("127.0.0.1", **proxied) as http:
        forwarded = await http.get("/metrics", headers={"x-forwarded-for": "203.0.113.9"})
        assert forwarded.status_code == 403
        await scrape(http, **{"x-forwarded-for": "127.0.0.1"})
