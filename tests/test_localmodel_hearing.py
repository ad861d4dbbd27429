"""The assistant's ears over a real WebSocket: a question spoken in real time is recognised
at the first pause inside the VAD's hangover, that pass is kept as the transcript, and its
timings reach the client on the `completed` event (hearing.RECOGNITION_TIMING_FIELD)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

pytest.importorskip("ctranslate2")

from localmodel.hearing import RECOGNITION_TIMING_FIELD  # noqa: E402
from localmodel.listener import PAUSE_MS  # noqa: E402
from localmodel.models import ASSISTANT_SILENCE_MS, preload_model  # noqa: E402
from tests.speech import chunks, padded, piper_speech  # noqa: E402
from tests.transcripts import english_words  # noqa: E402

from .local_assistant import collect, fix_assistant_clock, one  # noqa: E402
from .local_backend import Backend, realtime, serve_backend  # noqa: E402

pytestmark = pytest.mark.integration

COMPLETED = "conversation.item.input_audio_transcription.completed"


@pytest.fixture(scope="module", autouse=True)
def preloaded() -> None:
    preload_model("assistant")


@pytest.fixture
async def backend(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Backend]:
    fix_assistant_clock(monkeypatch)
    async with serve_backend() as served:
        yield served


async def test_assistant_keeps_the_pass_at_the_first_pause(backend: Backend) -> None:
    pcm = padded(piper_speech("What is seven times eight?"), 500, 1500)
    async with realtime(backend, "assistant") as client:
        for chunk in chunks(pcm):  # in real time, as a microphone sends it
            await client.append(chunk)
            await asyncio.sleep(0.02)
        events = await collect(client, COMPLETED)

    completed = one(events, COMPLETED)
    assert english_words(completed["transcript"]) == "what is seven times eight".split()
    timing = completed[RECOGNITION_TIMING_FIELD]
    assert timing["reused_pause_pass"] is True, timing
    # The pass started at the pause, before the VAD ended the turn (after its 400 ms).
    assert PAUSE_MS - 60 <= timing["started_ms"] < timing["stopped_ms"], timing
    assert timing["stopped_ms"] >= ASSISTANT_SILENCE_MS - 60, timing
    assert timing["ended_ms"] > timing["started_ms"], timing
