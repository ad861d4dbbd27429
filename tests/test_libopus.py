"""relay.libopus: libopus through ctypes, at the model's 24 kHz mono.

- the encoder's settings take effect (bit rate shows in packet sizes);
- the decoder turns packets coded at any rate and channel count (a browser's 48 kHz stereo)
  into 20 ms of pcm16 24 kHz mono;
- libopus's errors come back as OpusError with libopus's own words.
"""

from __future__ import annotations

import fractions

import numpy as np
import pytest
from aiortc.codecs.opus import OpusEncoder as AiortcOpusEncoder
from av import AudioFrame

from protocol.audio import FRAME_BYTES
from relay import libopus

from .speech import tone, white_noise

pytestmark = pytest.mark.unit


def mean_packet_bytes(bit_rate: int) -> float:
    encoder = libopus.Encoder(bit_rate, complexity=5)
    pcm = white_noise(1000, dbfs=-20)
    sizes = [len(encoder.encode(pcm[i : i + FRAME_BYTES])) for i in range(0, len(pcm), FRAME_BYTES)]
    return sum(sizes) / len(sizes)


def test_encoder_bit_rate_takes_effect() -> None:
    assert 80 <= mean_packet_bytes(40_000) <= 120  # 40 kbps: 100 bytes per 20 ms
    assert 30 <= mean_packet_bytes(16_000) <= 50


def test_decoder_turns_a_browsers_48k_stereo_packets_into_24k_mono() -> None:
    browser = AiortcOpusEncoder()  # 48 kHz stereo, as a browser sends
    decoder = libopus.Decoder()
    pcm48 = np.repeat(np.frombuffer(tone(200), np.int16), 2)  # 24 → 48 kHz, roughly
    decoded = []
    for i in range(10):
        frame = AudioFrame(format="s16", layout="mono", samples=960)
        frame.planes[0].update(pcm48[i * 960 : (i + 1) * 960].tobytes())
        frame.sample_rate, frame.pts = 48_000, i * 960
        frame.time_base = fractions.Fraction(1, 48_000)
        for payload in browser.encode(frame)[0]:
            decoded.append(decoder.decode(payload))
    assert decoded and all(len(pcm) == FRAME_BYTES for pcm in decoded)  # 480 samples, mono
    assert np.abs(np.frombuffer(decoded[-1], np.int16)).max() > 3000


def test_errors_carry_libopus_words() -> None:
    with pytest.raises(libopus.OpusError, match="corrupted"):
        libopus.Decoder().decode(b"\x03\xff")
