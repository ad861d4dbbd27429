"""Server VAD: a pluggable speech scorer and the turn detector that cuts utterances with it."""

from __future__ import annotations

import dataclasses
import math
from typing import Protocol

import numpy as np

from protocol.audio import BYTES_PER_MS

# Like Silero's get_speech_timestamps: speech continues until the score drops this far below the
# start threshold, so a voice hovering around the threshold does not flap.
HYSTERESIS = 0.15
MIN_SPEECH_MS = 60
MAX_SPEECH_MS = 5 * 60 * 1000


class VoiceActivity(Protocol):
    """Scores fixed windows of pcm16 24 kHz mono audio.

    A scorer that holds resources (Silero's pooled model) may also have a `close()`, which
    `TurnDetector.close()` calls.
    """

    window_ms: int

    def probability(self, window: bytes) -> float:
        """Speech probability 0..1 for one window of exactly `window_ms`."""
        ...


class EnergyVoiceActivity:
    """RMS energy as a speech score: linear in dBFS from `floor_dbfs` (0) to `ceiling_dbfs` (1).

    With the defaults the protocol's threshold 0.5 means -40 dBFS RMS: speech near a microphone
    is well above that, browser-denoised room noise well below.
    """

    window_ms = 20

    def __init__(self, *, floor_dbfs: float = -60.0, ceiling_dbfs: float = -20.0) -> None:
        if ceiling_dbfs <= floor_dbfs:
            raise ValueError("ceiling_dbfs must be above floor_dbfs")
        self._floor_dbfs = floor_dbfs
        self._span_db = ceiling_dbfs - floor_dbfs

    def probability(self, window: bytes) -> float:
        samples = np.frombuffer(window, dtype="<i2").astype(np.float32)
        if samples.size == 0:
            return 0.0
        mean_square = float(np.mean(samples * samples))
        if mean_square <= 0.0:
            return 0.0
        dbfs = 10.0 * math.log10(mean_square / (32768.0 * 32768.0))
        return min(1.0, max(0.0, (dbfs - self._floor_dbfs) / self._span_db))


@dataclasses.dataclass(frozen=True)
class TurnSettings:
    """The protocol's server_vad knobs."""

    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500


@dataclasses.dataclass(frozen=True)
class SpeechStarted:
    """Speech began; `audio_start_ms` (session audio time) includes the prefix padding."""

    audio_start_ms: int


@dataclasses.dataclass(frozen=True)
class SpeechStopped:
    """Speech ended after the silence duration; `audio` is the utterance to commit."""

    audio_end_ms: int
    audio: bytes


TurnEvent = SpeechStarted | SpeechStopped


class TurnDetector:
    """Cuts a stream of appended audio (any chunk sizes) into utterances.

    Positions count every byte fed since `start_ms`, so event times match the session's
    input audio clock. While idle only the prefix padding is kept; during speech the utterance
    grows up to `max_speech_ms`, where it is cut as if the speaker had paused.
    """

    def __init__(
        self,
        activity: VoiceActivity,
        settings: TurnSettings | None = None,
        *,
        min_speech_ms: int = MIN_SPEECH_MS,
        max_speech_ms: int = MAX_SPEECH_MS,
        start_ms: int = 0,
    ) -> None:
        self._activity = activity
        self._window_bytes = activity.window_ms * BYTES_PER_MS
        if self._window_bytes <= 0:
            raise ValueError("window_ms must be positive")
        self._settings = settings or TurnSettings()
        self._min_speech_bytes = min_speech_ms * BYTES_PER_MS
        self._max_speech_bytes = max_speech_ms * BYTES_PER_MS
        self._pending = bytearray()  # the tail that does not fill a window yet
        self._audio = bytearray()  # retained audio, covering [_audio_start, _pos)
        self._pos = start_ms * BYTES_PER_MS
        self._audio_start = self._pos
        self._in_speech = False
        self._run_start = -1  # where the current run of speech windows began (idle only)
        self._silence_bytes = 0

    @property
    def settings(self) -> TurnSettings:
        return self._settings

    @property
    def in_speech(self) -> bool:
        return self._in_speech

    @property
    def buffered_bytes(self) -> int:
        return len(self._audio) + len(self._pending)

    @property
    def position_ms(self) -> int:
        return (self._pos + len(self._pending)) // BYTES_PER_MS

    @property
    def silence_ms(self) -> int:
        """During speech: how much trailing silence has been counted towards the end of turn."""
        return self._silence_bytes // BYTES_PER_MS if self._in_speech else 0

    def speech_audio(self, offset: int = 0) -> bytes:
        """During speech: the utterance so far (prefix padding included) from byte `offset`.

        The utterance only grows until it is cut, and the `SpeechStopped` audio is the whole of
        it, so a listener can follow it with offsets.
        """
        return bytes(self._audio[offset:]) if self._in_speech else b""

    def update(self, settings: TurnSettings) -> None:
        self._settings = settings

    def close(self) -> None:
        """Releases the scorer (e.g. a pooled Silero model); the detector is unusable after."""
        close = getattr(self._activity, "close", None)
        if close is not None:
            close()

    def feed(self, pcm: bytes) -> list[TurnEvent]:
        """Scores every whole window now available and returns the turn events they caused."""
        self._pending += pcm
        window = self._window_bytes
        count = len(self._pending) // window
        if count == 0:
            return []
        data = bytes(self._pending[: count * window])
        del self._pending[: count * window]
        events: list[TurnEvent] = []
        for offset in range(0, len(data), window):
            chunk = data[offset : offset + window]
            self._audio += chunk
            self._pos += window
            event = self._score(chunk)
            if event is not None:
                events.append(event)
        if not self._in_speech:
            self._trim_idle()
        return events

    def flush(self) -> bytes:
        """Takes all buffered audio (a manual commit) and returns to idle."""
        audio = bytes(self._audio) + bytes(self._pending)
        self.clear()
        return audio

    def clear(self) -> None:
        self._pos += len(self._pending)
        self._pending.clear()
        self._audio.clear()
        self._audio_start = self._pos
        self._in_speech = False
        self._run_start = -1
        self._silence_bytes = 0

    def _score(self, window: bytes) -> TurnEvent | None:
        probability = self._activity.probability(window)
        threshold = self._settings.threshold
        if not self._in_speech:
            if probability < threshold:
                self._run_start = -1
                return None
            if self._run_start < 0:
                self._run_start = self._pos - len(window)
            if self._pos - self._run_start < max(self._min_speech_bytes, len(window)):
                return None
            return self._start()
        if probability < max(threshold - HYSTERESIS, 0.0):
            self._silence_bytes += len(window)
        else:
            self._silence_bytes = 0
        silence_bytes = self._settings.silence_duration_ms * BYTES_PER_MS
        if (
            self._silence_bytes >= max(silence_bytes, 1)
            or len(self._audio) >= self._max_speech_bytes
        ):
            return self._stop()
        return None

    def _start(self) -> SpeechStarted:
        prefix = self._settings.prefix_padding_ms * BYTES_PER_MS
        start = max(self._run_start - prefix, self._audio_start)
        del self._audio[: start - self._audio_start]
        self._audio_start = start
        self._in_speech = True
        self._run_start = -1
        self._silence_bytes = 0
        return SpeechStarted(audio_start_ms=start // BYTES_PER_MS)

    def _stop(self) -> SpeechStopped:
        event = SpeechStopped(audio_end_ms=self._pos // BYTES_PER_MS, audio=bytes(self._audio))
        self._audio.clear()
        self._audio_start = self._pos
        self._in_speech = False
        self._silence_bytes = 0
        return event

    def _trim_idle(self) -> None:
        # Keep the prefix padding plus the longest run that may still become speech.
        window = self._window_bytes
        keep = self._settings.prefix_padding_ms * BYTES_PER_MS
        keep += (self._min_speech_bytes // window + 2) * window
        excess = len(self._audio) - keep
        if excess > 0:
            del self._audio[:excess]
            self._audio_start += excess
