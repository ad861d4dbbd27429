"""MediaOptions: the relay as it was before each optimization still relays a conversation.

End to end, as tests/test_relay_echo.py: a real aiortc peer speaks, the local `echo` model
answers, with the benchmark's variants (benchmarks/variants.py) turned off together:
aiortc's decoder thread and 48 kHz playout frames, plain pacing; and aiortc's jitter buffer in
front of the loop decoder.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from relay import MediaOptions

from .conftest import live_app, wait_until
from .media import ClientPeer, SpeechTrack, envelope_correlation
from .speech import espeak_speech

pytestmark = pytest.mark.integration

AIORTC_PATHS = MediaOptions(
    loop_decoder=False, opus_packets=False, wake_on_audio=False, catch_up=False
)
AIORTC_JITTER_BUFFER = MediaOptions(reorder_buffer=False)


@pytest.mark.parametrize(
    "media", [AIORTC_PATHS, AIORTC_JITTER_BUFFER], ids=["aiortc-paths", "aiortc-jitter-buffer"]
)
async def test_the_relay_as_it_was_still_echoes_the_utterance(
    media: MediaOptions, tmp_path: Path
) -> None:
    utterance = espeak_speech("Hello there, this is a test of the voice relay.", tmp_path)
    client = ClientPeer(SpeechTrack(utterance))
    async with live_app(media=media) as live, live.http() as http:
        await client.connect(http)
        await client.track.finished.wait()  # type: ignore[attr-defined]
        start = len(client.received)
        # The echo arrives after the end of turn (silence hangover) and lasts as long as the speech.
        await wait_until(
            lambda: len(client.received) - start >= len(utterance) + 48 * 1500, timeout_s=15
        )
    await client.close()
    assert envelope_correlation(utterance, bytes(client.received[start:])) > 0.8
