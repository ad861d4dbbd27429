"""Turn detection of the local backend.

Pins: the energy score's mapping to the protocol threshold; that chunk sizes never change the
result; prefix padding, silence duration and hysteresis timing; that the committed utterance is
exactly the input slice it reports; short clicks and short pauses not cutting turns; the
max-speech cut; and that TurnDetector works with any VoiceActivity window (Silero uses 32 ms).
"""

from __future__ import annotations

import numpy as np
import pytest

from localmodel.vad import (
    EnergyVoiceActivity,
    SpeechStarted,
    SpeechStopped,
    TurnDetector,
    TurnEvent,
    TurnSettings,
)
from protocol.audio import BYTES_PER_MS
from tests import speech

pytestmark = pytest.mark.unit


def tone(ms: int, dbfs: float = -20.0) -> bytes:
    return speech.tone(ms, dbfs, 220.0)


def noise(ms: int, dbfs: float = -70.0) -> bytes:
    return speech.white_noise(ms, dbfs, seed=1)


def feed_in_chunks(detector: TurnDetector, audio: bytes, sizes: list[int]) -> list[TurnEvent]:
    events: list[TurnEvent] = []
    offset, index = 0, 0
    while offset < len(audio):
        size = sizes[index % len(sizes)]
        events += detector.feed(audio[offset : offset + size])
        offset += size
        index += 1
    return events


class PeakVoiceActivity:
    """A different scorer with Silero's 32 ms window: peak amplitude, linear to full scale."""

    window_ms = 32

    def probability(self, window: bytes) -> float:
        assert len(window) == self.window_ms * BYTES_PER_MS
        return float(np.max(np.abs(np.frombuffer(window, "<i2")))) / 32768.0


def test_energy_voice_activity_maps_dbfs_to_threshold() -> None:
    activity = EnergyVoiceActivity()
    window = activity.window_ms * BYTES_PER_MS
    assert activity.probability(bytes(window)) == 0.0
    assert activity.probability(tone(20, -40.0)[:window]) == pytest.approx(0.5, abs=0.02)
    assert activity.probability(tone(20, -10.0)[:window]) == 1.0
    assert activity.probability(noise(20, -70.0)[:window]) == 0.0


@pytest.mark.parametrize("sizes", [[960], [2], [4800], [962, 30, 7000, 2], [100_000]])
def test_turn_detector_chunk_sizes_do_not_change_events(sizes: list[int]) -> None:
    audio = noise(1000) + tone(800) + noise(1000)
    reference = TurnDetector(EnergyVoiceActivity()).feed(audio)
    events = feed_in_chunks(TurnDetector(EnergyVoiceActivity()), audio, sizes)
    assert events == reference
    assert [type(event) for event in events] == [SpeechStarted, SpeechStopped]


def test_turn_detector_reports_padding_and_silence_timing() -> None:
    settings = TurnSettings(threshold=0.5, prefix_padding_ms=300, silence_duration_ms=500)
    detector = TurnDetector(EnergyVoiceActivity(), settings, min_speech_ms=60, start_ms=10_000)
    audio = noise(1000) + tone(800) + noise(1500)
    started, stopped = feed_in_chunks(detector, audio, [960])
    assert isinstance(started, SpeechStarted) and isinstance(stopped, SpeechStopped)
    # Session clock starts at 10 s; speech begins at 11 s; 300 ms of prefix padding.
    assert started.audio_start_ms == 10_000 + 1000 - 300
    # Speech ends at 11.8 s; the stop comes after 500 ms of silence.
    assert stopped.audio_end_ms == 10_000 + 1800 + 500
    start, end = started.audio_start_ms - 10_000, stopped.audio_end_ms - 10_000
    assert stopped.audio == audio[start * BYTES_PER_MS : end * BYTES_PER_MS]


def test_turn_detector_threshold_decides_what_is_speech() -> None:
    audio = noise(500) + tone(600, dbfs=-45.0) + noise(1000)
    strict = TurnDetector(EnergyVoiceActivity(), TurnSettings(threshold=0.5))
    assert strict.feed(audio) == []
    lenient = TurnDetector(EnergyVoiceActivity(), TurnSettings(threshold=0.3))
    assert [type(event) for event in lenient.feed(audio)] == [SpeechStarted, SpeechStopped]


def test_turn_detector_ignores_clicks_and_bridges_short_pauses() -> None:
    detector = TurnDetector(EnergyVoiceActivity(), TurnSettings(silence_duration_ms=500))
    click = noise(500) + tone(40) + noise(1000)
    assert detector.feed(click) == []
    speech = tone(400) + noise(300) + tone(400) + noise(800)
    events = detector.feed(speech)
    assert [type(event) for event in events] == [SpeechStarted, SpeechStopped]
    stopped = events[1]
    assert isinstance(stopped, SpeechStopped)
    assert len(stopped.audio) >= (400 + 300 + 400 + 500) * BYTES_PER_MS


def test_turn_detector_hysteresis_keeps_fading_speech() -> None:
    # -43 dBFS scores 0.43: below the 0.5 start threshold, above the 0.35 stop threshold.
    audio = noise(500) + tone(300, -20.0) + tone(1000, -43.0) + noise(1000)
    started, stopped = TurnDetector(EnergyVoiceActivity()).feed(audio)
    assert isinstance(stopped, SpeechStopped)
    assert stopped.audio_end_ms == 500 + 300 + 1000 + 500


def test_turn_detector_cuts_overlong_speech() -> None:
    detector = TurnDetector(EnergyVoiceActivity(), max_speech_ms=1000)
    events = detector.feed(tone(2500))
    stops = [event for event in events if isinstance(event, SpeechStopped)]
    assert stops and len(stops[0].audio) == 1000 * BYTES_PER_MS


def test_turn_detector_flush_and_clear_keep_the_clock() -> None:
    detector = TurnDetector(EnergyVoiceActivity())
    detector.feed(noise(100) + tone(500) + b"\x00\x00" * 7)
    assert detector.in_speech
    audio = detector.flush()
    assert len(audio) >= 500 * BYTES_PER_MS + 14
    assert detector.buffered_bytes == 0 and not detector.in_speech
    assert detector.position_ms == 600
    detector.feed(tone(200))
    detector.clear()
    assert detector.buffered_bytes == 0 and detector.position_ms == 800


def test_turn_detector_idle_keeps_only_prefix_padding() -> None:
    detector = TurnDetector(EnergyVoiceActivity(), TurnSettings(prefix_padding_ms=300))
    detector.feed(noise(60_000))
    assert detector.buffered_bytes < 500 * BYTES_PER_MS


def test_turn_detector_works_with_other_window_sizes() -> None:
    detector = TurnDetector(PeakVoiceActivity(), TurnSettings(threshold=0.2))
    audio = noise(992) + tone(640, -10.0) + noise(1600)
    events = feed_in_chunks(detector, audio, [960])
    assert [type(event) for event in events] == [SpeechStarted, SpeechStopped]
    started, stopped = events
    assert isinstance(started, SpeechStarted) and isinstance(stopped, SpeechStopped)
    assert started.audio_start_ms == 992 - 300
    assert (
        stopped.audio
        == audio[started.audio_start_ms * BYTES_PER_MS : stopped.audio_end_ms * BYTES_PER_MS]
    )


def test_turn_detector_speech_audio_follows_the_utterance_by_offset() -> None:
    """What a streaming listener sees (offsets into speech_audio) is exactly the committed audio."""
    detector = TurnDetector(EnergyVoiceActivity(), TurnSettings(silence_duration_ms=300))
    audio = noise(400) + tone(700) + noise(120) + tone(300) + noise(600)
    heard = bytearray()
    stopped: SpeechStopped | None = None
    silences: list[int] = []
    for offset in range(0, len(audio), 1000):
        for event in detector.feed(audio[offset : offset + 1000]):
            if isinstance(event, SpeechStarted):
                heard.clear()
            elif isinstance(event, SpeechStopped):
                stopped = event
                heard += event.audio[len(heard) :]
        heard += detector.speech_audio(len(heard))
        silences.append(detector.silence_ms)
    assert stopped is not None
    assert bytes(heard) == stopped.audio
    assert detector.speech_audio() == b"" and detector.silence_ms == 0
    # Trailing silence grows in the final hangover up to the silence duration.
    assert 260 <= max(silences) < 300


class ClosingVoiceActivity(EnergyVoiceActivity):
    closed = 0

    def close(self) -> None:
        self.closed += 1


def test_turn_detector_close_releases_the_scorer() -> None:
    activity = ClosingVoiceActivity()
    TurnDetector(activity).close()
    assert activity.closed == 1
    TurnDetector(EnergyVoiceActivity()).close()  # scorers without close() are fine
