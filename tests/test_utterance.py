"""UtteranceRecorder: a short pre-roll, then the turn's audio, bounded."""

from __future__ import annotations

import pytest

from relay.utterance import MAX_UTTERANCE_MS, PRE_ROLL_MS, UtteranceRecorder

pytestmark = pytest.mark.unit

CHUNK = 960  # 20 ms


def test_utterance_keeps_pre_roll_and_turn() -> None:
    recorder = UtteranceRecorder()
    for i in range(100):
        recorder.feed(bytes([i]) * CHUNK)
    recorder.start()
    recorder.feed(b"\xff" * CHUNK)
    audio = recorder.stop()
    pre_roll_chunks = PRE_ROLL_MS // 20
    assert len(audio) == (pre_roll_chunks + 1) * CHUNK
    assert audio[0] == 100 - pre_roll_chunks and audio[-1] == 0xFF
    assert recorder.stop() == b"" and not recorder.recording


def test_utterance_is_bounded() -> None:
    recorder = UtteranceRecorder()
    recorder.start()
    for _ in range(MAX_UTTERANCE_MS // 20 + 50):
        recorder.feed(bytes(CHUNK))
    assert len(recorder.stop()) == MAX_UTTERANCE_MS * 48
