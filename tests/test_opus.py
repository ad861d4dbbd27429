"""PlayoutEncoder: one Opus packet per 20 ms frame, stamped with the frame's pts; silence is free.

- every packet decodes (with the Opus decoder a browser uses) back to the audio that went in;
- once the encoder codes silence as digital silence it stops running and that packet is
  resent, and it runs again as soon as there is audio;
- a frame of the wrong length is refused.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from av import CodecContext, Packet

from protocol.audio import FRAME_BYTES, PCM_RATE_HZ
from relay.opus import DIGITAL_SILENCE_BYTES, PlayoutEncoder

from .speech import tone

pytestmark = pytest.mark.unit

SILENT = bytes(FRAME_BYTES)


def decode_24k(packets: list[Packet[Any]]) -> np.ndarray:
    """Decode as a browser does (48 kHz) and keep every other sample: 24 kHz mono floats."""
    decoder = CodecContext.create("libopus", "r")
    decoder.format = "s16"
    decoder.layout = "mono"
    decoder.sample_rate = 48_000
    out = []
    for packet in packets:
        for frame in decoder.decode(Packet(bytes(packet))):
            out.append(np.frombuffer(bytes(frame.planes[0]), np.int16, frame.samples))
    return np.concatenate(out)[::2].astype(np.float64)


def frames(pcm: bytes) -> list[bytes]:
    return [pcm[i : i + FRAME_BYTES] for i in range(0, len(pcm) - FRAME_BYTES + 1, FRAME_BYTES)]


def test_one_packet_per_frame_stamped_with_the_frame_pts() -> None:
    encoder = PlayoutEncoder()
    packets = [encoder.encode(f, 480 * i) for i, f in enumerate(frames(tone(200)))]
    assert len(packets) == 10
    assert [p.pts for p in packets] == [480 * i for i in range(10)]
    assert all(p.time_base == Fraction(1, PCM_RATE_HZ) for p in packets)
    assert all(0 < p.size <= 200 for p in packets)  # ~40 kbps: ~100 bytes per 20 ms


def chirp_pcm(seconds: float) -> bytes:
    """A 200 → 3000 Hz sweep: unlike a tone, it matches itself at one lag only."""
    t = np.arange(int(seconds * PCM_RATE_HZ)) / PCM_RATE_HZ
    phase = 2 * np.pi * (200 * t + (3000 - 200) / (2 * seconds) * t**2)
    return (0.3 * 32767 * np.sin(phase)).astype(np.int16).tobytes()


def test_packets_decode_back_to_the_audio() -> None:
    encoder = PlayoutEncoder()
    pcm = chirp_pcm(0.5)
    decoded = decode_24k([encoder.encode(f, 480 * i) for i, f in enumerate(frames(pcm))])
    sent = np.frombuffer(pcm, np.int16).astype(np.float64)
    a = sent[2000:10000]
    match = [float(np.corrcoef(a, decoded[2000 + k : 10000 + k])[0, 1]) for k in range(200)]
    lag = int(np.argmax(match))
    assert lag == 60  # low-delay Opus: 2.5 ms of look-ahead, 60 samples at 24 kHz
    assert match[lag] > 0.98
    b = decoded[2000 + lag : 10000 + lag]
    assert 0.8 < np.sqrt(np.mean(b**2)) / np.sqrt(np.mean(a**2)) < 1.2


def test_silence_reuses_one_packet_once_digital_and_audio_encodes_again() -> None:
    encoder = PlayoutEncoder()
    for i, f in enumerate(frames(tone(100))):
        encoder.encode(f, 480 * i)
    assert encoder.encoded_frames == 5
    silent = [encoder.encode(SILENT, 480 * (5 + i), silent=True) for i in range(40)]
    warm_up = encoder.encoded_frames - 5
    assert 1 <= warm_up <= 20  # the tail decays for a few hundred ms, encoded for real
    assert silent[warm_up - 1].size <= DIGITAL_SILENCE_BYTES
    assert {bytes(p) for p in silent[warm_up - 1 :]} == {bytes(silent[warm_up - 1])}
    assert [p.pts for p in silent] == [480 * (5 + i) for i in range(40)]
    assert np.abs(decode_24k(silent)[-480 * 10 :]).max() == 0  # and it decodes to silence
    encoder.encode(frames(tone(20))[0], 480 * 45)
    assert encoder.encoded_frames == 6 + warm_up
    encoder.encode(SILENT, 480 * 46, silent=True)
    assert encoder.encoded_frames == 7 + warm_up  # audio ended the cached silence


def test_a_frame_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(ValueError, match="960 bytes"):
        PlayoutEncoder().encode(bytes(100), 0)
