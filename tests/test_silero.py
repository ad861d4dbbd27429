"""Silero VAD on real synthesized speech, silence and noise; model reuse."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from localmodel.silero import WINDOW_BYTES, SileroPool, SileroVoiceActivity
from localmodel.vad import VoiceActivity
from tests.speech import espeak_speech, padded, piper_speech, silence, white_noise

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def pool() -> SileroPool:
    return SileroPool()


@pytest.fixture
def activity(pool: SileroPool) -> Iterator[SileroVoiceActivity]:
    with SileroVoiceActivity(pool) as vad:
        yield vad


@pytest.fixture(scope="module")
def speech() -> bytes:
    return padded(piper_speech("Hello, how are you today? I would like to know the time."))


def scores(activity: VoiceActivity, pcm: bytes) -> np.ndarray:
    usable = len(pcm) // WINDOW_BYTES * WINDOW_BYTES
    return np.array(
        [activity.probability(pcm[i : i + WINDOW_BYTES]) for i in range(0, usable, WINDOW_BYTES)]
    )


def test_silero_window_is_32_ms(activity: SileroVoiceActivity) -> None:
    vad: VoiceActivity = activity
    assert vad.window_ms == 32
    assert WINDOW_BYTES == 32 * 48


def test_silero_scores_piper_speech_high(activity: SileroVoiceActivity, speech: bytes) -> None:
    result = scores(activity, speech)
    assert result.max() > 0.95
    assert (result > 0.5).mean() > 0.5
    # The padding around the speech stays low.
    assert result[:5].max() < 0.2


def test_silero_scores_espeak_speech_high(activity: SileroVoiceActivity, tmp_path: Path) -> None:
    result = scores(activity, espeak_speech("what is two plus three", tmp_path))
    assert result.max() > 0.95
    assert (result > 0.5).mean() > 0.5


@pytest.mark.parametrize("dbfs", [-20.0, -40.0])
def test_silero_scores_white_noise_low(activity: SileroVoiceActivity, dbfs: float) -> None:
    assert scores(activity, white_noise(3000, dbfs)).max() < 0.3


def test_silero_scores_silence_low(activity: SileroVoiceActivity) -> None:
    assert scores(activity, silence(2000)).max() < 0.1


def test_silero_rejects_other_window_sizes(activity: SileroVoiceActivity) -> None:
    with pytest.raises(ValueError):
        activity.probability(bytes(960))


def test_silero_streams_are_independent(pool: SileroPool, speech: bytes) -> None:
    with SileroVoiceActivity(pool) as alone:
        expected = scores(alone, speech)
    with SileroVoiceActivity(pool) as first, SileroVoiceActivity(pool) as second:
        noise = white_noise(len(speech) // 48, -20.0)
        interleaved = []
        for i in range(0, len(speech) // WINDOW_BYTES * WINDOW_BYTES, WINDOW_BYTES):
            second.probability(noise[i : i + WINDOW_BYTES])
            interleaved.append(first.probability(speech[i : i + WINDOW_BYTES]))
    np.testing.assert_allclose(interleaved, expected, atol=1e-5)


def test_silero_closed_models_are_reused_with_fresh_state(pool: SileroPool, speech: bytes) -> None:
    vad = SileroVoiceActivity(pool)
    first = scores(vad, speech)
    idle = pool.idle_count()
    vad.close()
    vad.close()  # idempotent
    assert pool.idle_count() == idle + 1
    with pytest.raises(RuntimeError):
        vad.probability(bytes(WINDOW_BYTES))
    with SileroVoiceActivity(pool) as again:
        assert pool.idle_count() == idle
        np.testing.assert_allclose(scores(again, speech), first, atol=1e-5)


def test_silero_reset_forgets_the_stream(activity: SileroVoiceActivity, speech: bytes) -> None:
    first = scores(activity, speech)
    activity.reset()
    np.testing.assert_allclose(scores(activity, speech), first, atol=1e-5)
