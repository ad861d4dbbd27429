"""End to end: a real aiortc peer asks the local `assistant` model the time through the relay.

Pins: the spoken question comes back as the user's transcript, and the answer (from the
model's clock) as a final assistant transcript on the data channel with its audio audible on
the peer's track, after the silence the relay measured as the turn's latency.
"""

from __future__ import annotations

import pytest

from localmodel.models import preload_model
from tests.speech import piper_speech
from tests.transcripts import english_words

from .conftest import live_app, wait_until
from .local_assistant import fix_assistant_clock
from .media import ClientPeer, SpeechTrack, envelope

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", autouse=True)
def preloaded() -> None:
    preload_model("assistant")


def loud_ms(pcm: bytes) -> int:
    return int((envelope(pcm) > 0.02).sum()) * 10


def final_transcripts(client: ClientPeer, role: str) -> list[str]:
    return [
        str(event["text"])
        for event in client.events_of("transcript")
        if event["role"] == role and event["final"]
    ]


async def test_relay_assistant_tells_the_time(monkeypatch: pytest.MonkeyPatch) -> None:
    fix_assistant_clock(monkeypatch)
    question = piper_speech("what time is it")
    client = ClientPeer(SpeechTrack(question))
    async with live_app(model="assistant") as live, live.http() as http:
        await client.connect(http)
        await client.track.finished.wait()  # type: ignore[attr-defined]
        start = len(client.received)
        await wait_until(lambda: final_transcripts(client, "assistant"), timeout_s=20)
        # Let most of the answer (about 1.5 s of speech) play out to the peer.
        await wait_until(lambda: loud_ms(bytes(client.received[start:])) > 1000, timeout_s=10)
        latencies = client.events_of("latency")
        states = [event["state"] for event in client.events_of("state")]
        response = await http.delete(f"/api/sessions/{client.session_id}")
        assert response.status_code == 204
    await client.close()

    user = final_transcripts(client, "user")
    assert user and {"time", "it"} <= set(english_words(user[-1])), user
    assert final_transcripts(client, "assistant") == ["It's 3:05 PM."]
    answer = bytes(client.received[start:])
    assert envelope(answer).max() > 0.05, "no audio came back"
    assert "user_speaking" in states and "assistant_speaking" in states
    # Measured from the end of speech, so it includes the VAD's silence hangover.
    assert len(latencies) == 1 and 300 < latencies[0]["ms"] < 5000
