"""End to end: a real aiortc peer speaks, the local `echo` model answers through the relay."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from .conftest import LiveServer, wait_until
from .media import ClientPeer, SpeechTrack, envelope, envelope_correlation
from .speech import espeak_speech

pytestmark = pytest.mark.integration


async def test_echo_answers_with_the_spoken_utterance(
    live_server: LiveServer, tmp_path: Path
) -> None:
    text = "Hello there, this is a test of the voice relay."
    utterance = espeak_speech(text, tmp_path, words_per_minute=150)
    client = ClientPeer(SpeechTrack(utterance))
    async with live_server.http() as http:
        await client.connect(http)
        await client.track.finished.wait()  # type: ignore[attr-defined]
        start = len(client.received)
        # The echo arrives after the end of turn (silence hangover) and lasts as long as the speech.
        await wait_until(
            lambda: len(client.received) - start >= len(utterance) + 48 * 1500, timeout_s=15
        )
        states = [e["state"] for e in client.events_of("state")]
        latencies = client.events_of("latency")
        await wait_until(lambda: bool(client.events_of("tone")))
        tone = client.events_of("tone")[0]
        response = await http.delete(f"/api/sessions/{client.session_id}")
        assert response.status_code == 204
    await client.close()

    received = bytes(client.received[start:])
    assert envelope(received).max() > 0.05, "no audio came back"
    assert envelope_correlation(utterance, received) > 0.8
    assert states[:2] == ["connecting", "listening"]
    assert "user_speaking" in states and "assistant_speaking" in states
    # Measured from the end of speech, so it includes the VAD's silence hangover (echo: 500 ms,
    # as its session reports).
    assert len(latencies) == 1 and 350 < latencies[0]["ms"] < 3000
    # The relay measures the tone of voice of the turn itself, whatever the backend.
    assert tone["role"] == "user" and tone["item_id"]
    assert 60 < tone["pitch_median_hz"] < 300
    assert -40 < tone["loudness_dbfs"] < 0
    assert 1.0 < tone["duration_s"] < 6.0
    # The relay plays silence when nothing is queued: the reply starts after a quiet gap.
    assert np.all(envelope(received)[:10] < 0.01)
