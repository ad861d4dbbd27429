"""PacedPacketTrack: a load client's microphone, pre-encoded Opus packets sent every 20 ms."""

from __future__ import annotations

import asyncio

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from .markers import FRAME_S, FRAME_SAMPLES, TIME_BASE


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
        packet.pts = self._index * FRAME_SAMPLES  # Opus's RTP clock is 48 kHz whatever it codes
        packet.time_base = TIME_BASE
        return packet
