"""PlayoutEncoder: the playout's 20 ms pcm16 24 kHz mono frames as ready-to-send Opus packets.

aiortc encodes audio frames itself: it resamples to 48 kHz stereo, encodes at 96 kbps in the
default executor (a thread hand-off per frame that gains nothing, PyAV holds the GIL) and
computes an RFC 6465 level in Python. A track that returns `av.Packet`s skips all of it. We
encode the model's 24 kHz mono directly with libopus in the restricted low-delay mode (CELT
only: 2.5 ms of look-ahead instead of 6.5 ms, and cheaper). Once the encoder itself codes a
silent frame as digital silence (a 3-byte packet, ~250 ms after the audio stopped, when its
state has decayed), that packet is resent without running the encoder: a conversation's
playout is silent most of the time.
"""

from __future__ import annotations

from typing import Any

from av import Packet

from protocol.audio import FRAME_BYTES

from . import libopus
from .audio import PCM_TIME_BASE

BIT_RATE = 40_000  # mono CELT at 40 kbps carries a 24 kHz voice transparently
COMPLEXITY = 5  # about half the CPU of complexity 10 in low-delay mode
DIGITAL_SILENCE_BYTES = 3  # libopus's packet for a frame of zeros once its state is silent


class PlayoutEncoder:
    """Encodes one 20 ms frame per call into one Opus packet stamped with the frame's pts."""

    def __init__(self) -> None:
        self._encoder = libopus.Encoder(BIT_RATE, COMPLEXITY)
        self._silent_packet: bytes | None = None
        self.encoded_frames = 0

    def encode(self, pcm: bytes, pts: int, *, silent: bool = False) -> Packet[Any]:
        """Packet for 20 ms of audio (`pts` in 24 kHz samples); `silent` when `pcm` is zeros."""
        if len(pcm) != FRAME_BYTES:
            raise ValueError(f"a playout frame is {FRAME_BYTES} bytes, got {len(pcm)}")
        if silent and self._silent_packet is not None:
            data = self._silent_packet
        else:
            data = self._encoder.encode(pcm)
            self.encoded_frames += 1
            if silent and len(data) <= DIGITAL_SILENCE_BYTES:
                self._silent_packet = data
            elif not silent:
                self._silent_packet = None
        packet = Packet(data)
        packet.pts = pts
        packet.time_base = PCM_TIME_BASE
        return packet
