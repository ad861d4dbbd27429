"""Tone features on synthetic signals with known pitch, level and syllable rate."""

from __future__ import annotations

import json
import time

import numpy as np
import numpy.typing as npt
import pytest

from protocol.audio import PCM_RATE_HZ
from protocol.events import ServerEvent
from protocol.prosody import ToneFeatures, analyze_utterance
from tests.speech import scaled, silence, white_noise

pytestmark = pytest.mark.unit


def harmonic_tone(f0_hz: float, seconds: float, peak: float = 0.3) -> npt.NDArray[np.float64]:
    t = np.arange(int(PCM_RATE_HZ * seconds)) / PCM_RATE_HZ
    wave = sum(np.sin(2 * np.pi * f0_hz * k * t) / k for k in range(1, 6))
    return np.asarray(wave / np.abs(wave).max() * peak)


def pcm(signal: npt.NDArray[np.float64]) -> bytes:
    return (np.clip(signal, -1.0, 1.0) * 32767).astype("<i2").tobytes()


def syllable_train(rate_hz: float, seconds: float = 3.0) -> bytes:
    """A 150 Hz voiced tone whose loudness rises and falls `rate_hz` times per second."""
    t = np.arange(int(PCM_RATE_HZ * seconds)) / PCM_RATE_HZ
    envelope = 0.5 * (1 - np.cos(2 * np.pi * rate_hz * t))
    return pcm(harmonic_tone(150, seconds, 0.5) * envelope)


@pytest.mark.parametrize("f0_hz", [90.0, 200.0, 320.0])
def test_prosody_harmonic_tone_reports_its_pitch(f0_hz: float) -> None:
    tone = analyze_utterance(pcm(harmonic_tone(f0_hz, 1.0)))
    assert tone.pitch_median_hz == pytest.approx(f0_hz, rel=0.02)
    assert tone.pitch_range_hz is not None and tone.pitch_range_hz < 0.05 * f0_hz
    assert tone.voiced_s > 0.9
    assert tone.duration_s == pytest.approx(1.0)


def test_prosody_pitch_range_covers_a_glide() -> None:
    first = harmonic_tone(120, 1.0)
    second = harmonic_tone(240, 1.0)
    tone = analyze_utterance(pcm(np.concatenate([first, second])))
    assert tone.pitch_range_hz is not None
    assert 90 < tone.pitch_range_hz < 130


def test_prosody_louder_input_reports_higher_loudness() -> None:
    quiet = pcm(harmonic_tone(200, 1.0, peak=0.05))
    loud_db = analyze_utterance(scaled(quiet, 8.0)).loudness_dbfs
    quiet_db = analyze_utterance(quiet).loudness_dbfs
    assert loud_db - quiet_db == pytest.approx(20 * np.log10(8.0), abs=0.5)


def test_prosody_loudness_is_rms_dbfs() -> None:
    # A full-scale square wave is 0 dBFS, so a sine of peak 0.5 is -9 dBFS.
    t = np.arange(PCM_RATE_HZ) / PCM_RATE_HZ
    tone = analyze_utterance(pcm(0.5 * np.sin(2 * np.pi * 200 * t)))
    assert tone.loudness_dbfs == pytest.approx(-9.03, abs=0.3)


@pytest.mark.parametrize("rate_hz", [2.0, 4.0, 6.0])
def test_prosody_amplitude_modulation_reports_syllable_rate(rate_hz: float) -> None:
    tone = analyze_utterance(syllable_train(rate_hz))
    assert tone.speaking_rate_sps == pytest.approx(rate_hz, rel=0.12)
    assert tone.syllables == round(3 * rate_hz)


def test_prosody_rate_ignores_surrounding_silence() -> None:
    tone = analyze_utterance(silence(1000) + syllable_train(4.0) + silence(1000))
    assert tone.speaking_rate_sps == pytest.approx(4.0, rel=0.12)
    assert tone.duration_s == pytest.approx(5.0)


def test_prosody_noise_and_silence_have_no_pitch() -> None:
    noise = analyze_utterance(white_noise(2000, -20.0))
    assert noise.pitch_median_hz is None
    assert noise.syllables == 0
    assert noise.loudness_dbfs == pytest.approx(-20.0, abs=1.0)
    quiet = analyze_utterance(silence(1000))
    assert quiet == ToneFeatures(1.0, 0.0, None, None, -100.0, 0.0, 0)
    assert analyze_utterance(b"").duration_s == 0.0


def test_prosody_event_is_json() -> None:
    event = analyze_utterance(syllable_train(4.0)).to_event()
    assert event["type"] == ServerEvent.TONE
    decoded = json.loads(json.dumps(event))
    assert decoded["pitch_median_hz"] == pytest.approx(150, rel=0.02)
    assert set(decoded) == {
        "type",
        "duration_s",
        "voiced_s",
        "pitch_median_hz",
        "pitch_range_hz",
        "loudness_dbfs",
        "speaking_rate_sps",
        "syllables",
    }


def test_prosody_is_cheap() -> None:
    audio = syllable_train(4.0, seconds=10.0)
    analyze_utterance(audio)
    started = time.process_time()
    analyze_utterance(audio)
    # A few ms per second of audio; the bound leaves room for a busy CI machine.
    assert time.process_time() - started < 0.25
