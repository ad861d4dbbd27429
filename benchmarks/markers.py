"""Marker audio: numbered tone bursts, pre-encoded to Opus once, found again in received audio.

Every `PERIOD_FRAMES` frames the signal starts a `BURST_FRAMES`-long tone whose frequency encodes
the marker number modulo `CLASSES` (600, 700, ... 3700 Hz); between bursts there is quiet noise.
One cycle holds `CLASSES` markers and is encoded once per process, so sending costs the client
no encoding. The receiver finds each burst's onset to the sample by amplitude, names it by FFT
and matches it to the next marker sent with that class, so a lost marker is counted as lost
and latencies beyond one cycle stay unambiguous.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import av
import numpy as np

from protocol.audio import FRAME_MS
from relay.audio import WEBRTC_RATE_HZ, WEBRTC_TIME_BASE

WEBRTC_FRAME_SAMPLES = WEBRTC_RATE_HZ * FRAME_MS // 1000  # 960: aiortc decodes to 48 kHz
PERIOD_FRAMES = 5  # a marker every 100 ms
BURST_FRAMES = 2  # 40 ms of tone
CLASSES = 32
CYCLE_FRAMES = PERIOD_FRAMES * CLASSES  # 3.2 s
BASE_HZ, STEP_HZ = 600.0, 100.0
BURST_AMPLITUDE = 0.5
NOISE_AMPLITUDE = 0.002
FADE_S = 0.001
OPUS_BITRATE = 32_000

ONSET_THRESHOLD = int(0.05 * 32768)  # 10 % of the burst's amplitude
QUIET_BEFORE_ONSET = WEBRTC_FRAME_SAMPLES  # 20 ms of quiet separates two bursts
WINDOW_SKIP = 240  # classify 5..25 ms after the onset, inside the burst
WINDOW = WEBRTC_FRAME_SAMPLES
MIN_PEAK_SHARE = 0.5  # the winning tone must hold this share of the band's energy


def marker_hz(marker_class: int) -> float:
    return BASE_HZ + STEP_HZ * marker_class


def cycle_pcm(seed: int = 1) -> np.ndarray:
    """One cycle of marker audio, float in [-1, 1], mono 48 kHz."""
    rng = np.random.default_rng(seed)
    signal = rng.uniform(-NOISE_AMPLITUDE, NOISE_AMPLITUDE, CYCLE_FRAMES * WEBRTC_FRAME_SAMPLES)
    burst = BURST_FRAMES * WEBRTC_FRAME_SAMPLES
    t = np.arange(burst) / WEBRTC_RATE_HZ
    fade = np.minimum(1.0, t / FADE_S) * np.minimum(1.0, (burst / WEBRTC_RATE_HZ - t) / FADE_S)
    for marker_class in range(CLASSES):
        start = marker_class * PERIOD_FRAMES * WEBRTC_FRAME_SAMPLES
        tone = np.sin(2 * np.pi * marker_hz(marker_class) * t) * BURST_AMPLITUDE * fade
        signal[start : start + burst] = tone
    return np.asarray(signal, dtype=np.float64)


def encode_cycle(seed: int = 1) -> list[bytes]:
    """The cycle as one Opus packet per 20 ms frame, encoded in a steady state (loops cleanly)."""
    pcm = (cycle_pcm(seed) * 32767).astype("<i2")
    encoder = av.CodecContext.create("libopus", "w")
    encoder.bit_rate = OPUS_BITRATE
    encoder.format, encoder.layout, encoder.sample_rate = "s16", "mono", WEBRTC_RATE_HZ
    encoder.time_base = WEBRTC_TIME_BASE
    encoder.options = {"application": "voip"}
    packets: list[bytes] = []
    # Encode two cycles and keep the second: its first packets carry the tail of the first
    # cycle in the encoder's look-ahead, exactly as they will when the cycle repeats.
    for index in range(2 * CYCLE_FRAMES):
        start = (index % CYCLE_FRAMES) * WEBRTC_FRAME_SAMPLES
        frame = av.AudioFrame.from_ndarray(
            pcm[start : start + WEBRTC_FRAME_SAMPLES].reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate, frame.time_base = WEBRTC_RATE_HZ, WEBRTC_TIME_BASE
        frame.pts = index * WEBRTC_FRAME_SAMPLES
        packets += [bytes(p) for p in encoder.encode(frame)]
    assert len(packets) >= 2 * CYCLE_FRAMES - 2, "Opus should give one packet per frame"
    return packets[-CYCLE_FRAMES:]


def classify(window: np.ndarray) -> int | None:
    """The marker class of a 20 ms window inside a burst, or None if no class tone dominates."""
    spectrum = np.abs(np.fft.rfft(window * np.hanning(len(window)))) ** 2
    bins = [round(marker_hz(c) * len(window) / WEBRTC_RATE_HZ) for c in range(CLASSES)]
    power = np.array([spectrum[b - 1 : b + 2].sum() for b in bins])
    band = spectrum[bins[0] - 2 : bins[-1] + 3].sum()
    best = int(power.argmax())
    return best if band > 0 and power[best] / band >= MIN_PEAK_SHARE else None


@dataclass
class MarkerLog:
    """What one peer sent: loop time of each marker's first packet, by marker number."""

    sent: dict[int, float] = field(default_factory=dict)

    def record(self, frame_index: int, t: float) -> None:
        if frame_index % PERIOD_FRAMES == 0:
            self.sent[frame_index // PERIOD_FRAMES] = t


@dataclass
class Arrival:
    marker: int
    latency_s: float
    t: float


class MarkerDetector:
    """Finds markers in received frames (any layout; the first channel is used)."""

    def __init__(self, log: MarkerLog) -> None:
        self._log = log
        self._position = 0  # samples received so far
        self._last_loud = -(10**9)
        self._onset_t: float | None = None
        self._segment: list[np.ndarray] = []
        self._segment_samples = 0
        self._last_marker = -1
        self.arrivals: list[Arrival] = []
        self.unknown_bursts = 0

    def feed(self, frame: av.AudioFrame, t: float) -> None:
        channels = len(frame.layout.channels)
        pcm = np.frombuffer(frame.planes[0], dtype=np.int16, count=frame.samples * channels)
        if channels > 1:
            pcm = pcm[::channels]
        if frame.sample_rate != WEBRTC_RATE_HZ:
            raise ValueError(f"expected {WEBRTC_RATE_HZ} Hz frames, got {frame.sample_rate}")
        self._feed(pcm, t)

    def _feed(self, pcm: np.ndarray, t: float) -> None:
        if self._onset_t is None:
            loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > ONSET_THRESHOLD)
            if loud.size:
                first = int(loud[0])
                if self._position + first - self._last_loud > QUIET_BEFORE_ONSET:
                    self._onset_t = t + first / WEBRTC_RATE_HZ
                    self._segment, self._segment_samples = [pcm[first:]], len(pcm) - first
                self._last_loud = self._position + int(loud[-1])
        else:
            self._segment.append(pcm)
            self._segment_samples += len(pcm)
            loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > ONSET_THRESHOLD)
            if loud.size:
                self._last_loud = self._position + int(loud[-1])
        self._position += len(pcm)
        if self._onset_t is not None and self._segment_samples >= WINDOW_SKIP + WINDOW:
            segment = np.concatenate(self._segment)[WINDOW_SKIP : WINDOW_SKIP + WINDOW]
            self._match(classify(segment.astype(np.float64) / 32768), self._onset_t)
            self._onset_t, self._segment, self._segment_samples = None, [], 0

    def _match(self, marker_class: int | None, t: float) -> None:
        if marker_class is None:
            self.unknown_bursts += 1
            return
        if self._last_marker < 0 and self._log.sent:
            self._last_marker = min(self._log.sent) - 1
        marker = self._last_marker + 1
        marker += (marker_class - marker) % CLASSES
        sent = self._log.sent.get(marker)
        if sent is None or sent > t:
            self.unknown_bursts += 1
            return
        self._last_marker = marker
        self.arrivals.append(Arrival(marker, t - sent, t))
