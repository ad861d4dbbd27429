"""PacedPacketTrack: a load client's microphone, pre-encoded Opus packets sent every 20 ms."""

from __future__ import annotations

import asyncio

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from protocol.audio import FRAME_S
from relay.audio import WEBRTC_TIME_BASE

from .markers import WEBRTC_FRAME_SAMPLES


class PacedPacketTrack(MediaStreamTrack):
    """Sends `payload(index, now)` every 20 ms from the first packet on; records send lag."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._index = 0
        self._start: float | None = None
        self.lag_s: list[float] = []

    def payload(self, index: int, now: float) -> bytes:
        raise NotImplementedError

    async def ready(self) -> None:
        """Waited for before each packet (a subclass may hold the stream back)."""

    async def recv(self) -> av.Packet:
        if self.readyState != "live":
            raise MediaStreamError
        await self.ready()
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._start is None:
            self._start = now
        else:
            self._index += 1
            due = self._start + self._index * FRAME_S
            if due > now:
                await asyncio.sleep(due - now)
                now = loop.time()
            self.lag_s.append(now - due)
        packet = av.Packet(self.payload(self._index, now))
        # Opus's RTP clock is 48 kHz, whatever rate it codes.
        packet.pts = self._index * WEBRTC_FRAME_SAMPLES
        packet.time_base = WEBRTC_TIME_BASE
        return packet
