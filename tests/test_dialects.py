"""Dialects against a local realtime server, through the whole app and a real aiortc peer.

Pins: the session.update shape per dialect, the Authorization header, 24 kHz pcm16 appends of
20–40 ms, and barge-in (flush, response.cancel, conversation.item.truncate with played ms no more
than received ms, late deltas of the cancelled response never played).
"""

from __future__ import annotations

import base64

import numpy as np
import pytest

from .conftest import live_app, wait_until
from .media import ClientPeer, SpeechTrack, samples
from .realtime_server import recording_server
from .speech import tone

pytestmark = pytest.mark.integration

KEYS = {
    "stepfun": {"stepfun_api_key": "sk-test-stepfun"},
    "openai": {"openai_api_key": "sk-test-openai"},
}


@pytest.mark.parametrize("dialect", ["stepfun", "openai"])
async def test_dialect_session_update_and_appends(dialect: str) -> None:
    async with (
        recording_server(dialect) as backend,
        live_app(
            backend=dialect,
            backend_url=backend.url,
            voice="linjiajiejie",
            instructions="Be brief.",
            **KEYS[dialect],
        ) as live,
        live.http() as http,
    ):
        client = ClientPeer(SpeechTrack(tone(1000)))
        await client.connect(http)
        update = await backend.wait_for("session.update")
        await backend.wait_for_audio_ms(1000)
        await client.close()

    session = update["session"]
    if dialect == "stepfun":
        assert session["input_audio_format"] == "pcm16"
        assert session["output_audio_format"] == "pcm16"
        assert session["voice"] == "linjiajiejie"
        assert session["turn_detection"]["type"] == "server_vad"
        assert "energy_awakeness_threshold" in session["turn_detection"]
        assert "type" not in session
        assert "model=stepaudio-2.5-realtime" in backend.paths[0]
    else:
        assert session["type"] == "realtime"
        assert session["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
        assert session["audio"]["output"]["voice"] == "linjiajiejie"
        assert session["audio"]["input"]["turn_detection"]["type"] == "server_vad"
        assert "input_audio_format" not in session
    assert session["instructions"] == "Be brief."
    key = KEYS[dialect][f"{dialect}_api_key"]
    assert backend.headers[0]["Authorization"] == f"Bearer {key}"
    # The session.update comes before any audio.
    assert backend.received[0]["type"] == "session.update"
    sizes = backend.appended_bytes()
    assert all(size % 2 == 0 for size in sizes)
    # 20–40 ms of 24 kHz pcm16 per append (the last may be shorter while the stream starts).
    assert all(960 <= size <= 1920 for size in sizes[1:-1]), sizes
    # A 440 Hz tone must come through at 24 kHz: its spectral peak stays at 440 Hz.
    pcm = b"".join(
        base64.b64decode(e["audio"]) for e in backend.of_type("input_audio_buffer.append")
    )
    x = samples(pcm)[-24000:]
    peak_hz = np.argmax(np.abs(np.fft.rfft(x))) * 24000 / len(x)
    assert abs(peak_hz - 440) < 5


@pytest.mark.parametrize("dialect", ["stepfun", "openai"])
async def test_dialect_barge_in_cancels_truncates_and_drops_late_audio(dialect: str) -> None:
    async with (
        recording_server(dialect) as backend,
        live_app(backend=dialect, backend_url=backend.url, **KEYS[dialect]) as live,
        live.http() as http,
    ):
        client = ClientPeer(SpeechTrack())
        await client.connect(http)
        await backend.wait_for_audio_ms(300)
        session = live.registry.get(client.session_id or "")

        # The model answers with 3 s of a 440 Hz tone, much faster than real time.
        await backend.send({"type": "response.created", "response": {"id": "resp_1"}})
        await backend.send_audio("resp_1", "item_1", tone(3000, hz=440.0))
        await wait_until(lambda: session.playout.item("item_1") is not None)
        item = session.playout.item("item_1")
        assert item is not None
        await wait_until(lambda: item.sent_ms >= 1000)

        await backend.send({"type": "input_audio_buffer.speech_started", "audio_start_ms": 1000})
        cancel = await backend.wait_for("response.cancel")
        truncate = await backend.wait_for("conversation.item.truncate")
        assert session.playout.buffered_ms == 0
        played_at_cut = item.sent_ms

        # Late audio of the cancelled response (a different pitch) must never be played.
        await backend.send_audio("resp_1", "item_1", tone(1000, hz=1000.0))
        await backend.send(
            {"type": "response.done", "response": {"id": "resp_1", "status": "cancelled"}}
        )
        await wait_until(lambda: session.stats.late_deltas_dropped >= 10)
        received_after_cut = len(client.received)
        await backend.wait_for_audio_ms(2500)
        tail = bytes(client.received[received_after_cut:])
        await client.close()

    assert cancel == {"type": "response.cancel"}
    assert truncate["item_id"] == "item_1"
    assert truncate["content_index"] == 0
    assert truncate["audio_end_ms"] <= item.received_ms == 3000
    assert 900 <= truncate["audio_end_ms"] <= played_at_cut
    assert item.sent_ms == played_at_cut
    assert session.stats.interruptions == 1
    # After the cut the browser hears silence (Opus may leave a few ms of decay).
    assert np.abs(samples(tail[4800:])).max() < 0.01
    assert any(e["type"] == "interrupted" for e in client.events)
