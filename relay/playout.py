"""PlayoutTrack: the outbound audio track; paced 20 ms Opus packets from a flushable buffer."""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame, Packet

from protocol.audio import BYTES_PER_MS, FRAME_BYTES, FRAME_S, FRAME_SAMPLES

from .audio import WebRtcResampler
from .media import MediaOptions
from .opus import PlayoutEncoder

logger = logging.getLogger(__name__)

MAX_BUFFER_MS = 120_000  # model audio arrives faster than real time; two minutes is plenty
MAX_TRACKED_ITEMS = 64
LATE_RESET_S = 0.2  # after a stall this long, restart pacing instead of bursting frames
# A real-time stream (loopback, a full-duplex model) that got a burst after a stall keeps it as
# latency: once the buffer has stayed within these bounds for CATCH_UP_STABLE_FRAMES, one frame
# in every CATCH_UP_EVERY_FRAMES goes out early. Model replies queue far more than the maximum.
CATCH_UP_MIN_MS = 40
CATCH_UP_MAX_MS = 400
CATCH_UP_STABLE_FRAMES = 25
CATCH_UP_EVERY_FRAMES = 5
SILENCE = bytes(FRAME_BYTES)


@dataclass
class ItemPlayout:
    """How much of one assistant item was received and actually sent to the browser."""

    item_id: str | None
    received_bytes: int = 0
    sent_bytes: int = 0

    @property
    def received_ms(self) -> int:
        return self.received_bytes // BYTES_PER_MS

    @property
    def sent_ms(self) -> int:
        return self.sent_bytes // BYTES_PER_MS


class PlayoutTrack(MediaStreamTrack):
    """Sends one 20 ms Opus packet on schedule: buffered model audio, else silence.

    `next_pcm` is the paced pcm16 24 kHz stream; `recv` (aiortc's sender) encodes it here, so
    aiortc sends the packets as they are (with `options.opus_packets` off: 48 kHz frames that
    aiortc encodes).
    """

    kind = "audio"

    def __init__(
        self,
        on_item_started: Callable[[str | None], None] | None = None,
        on_drained: Callable[[], None] | None = None,
        options: MediaOptions = MediaOptions(),
        label: str = "PlayoutTrack",
    ) -> None:
        super().__init__()
        self._options = options
        self._label = label
        self._encoder = PlayoutEncoder() if options.opus_packets else None
        self._to_webrtc = None if options.opus_packets else WebRtcResampler()
        self._segments: deque[tuple[ItemPlayout, bytes]] = deque()
        self._head_offset = 0
        self._buffered_bytes = 0
        self._items: OrderedDict[str | None, ItemPlayout] = OrderedDict()
        self._current: ItemPlayout | None = None
        self._on_item_started = on_item_started
        self._on_drained = on_drained
        self._start: float | None = None
        self._pts = 0
        # True while the last frame ran out of audio: the next push is sent at once and pacing
        # restarts from it, so an underrun costs one gap, not 20 ms of latency from then on.
        self._starved = True
        self._wake: asyncio.Future[bool] | None = None
        self._spare_frames = 0
        self.dropped_bytes = 0
        self.late_frames = 0

    @property
    def buffered_ms(self) -> int:
        return self._buffered_bytes // BYTES_PER_MS

    @property
    def is_playing(self) -> bool:
        return self._buffered_bytes > 0

    def item(self, item_id: str | None) -> ItemPlayout | None:
        return self._items.get(item_id)

    def push(self, item_id: str | None, pcm: bytes) -> None:
        """Queue model audio for `item_id`; drops it (counted) if the buffer is full."""
        if not pcm:
            return
        if self._buffered_bytes + len(pcm) > MAX_BUFFER_MS * BYTES_PER_MS:
            if not self.dropped_bytes:
                logger.warning(
                    "%s dropped %d ms of model audio: more than %d s queued",
                    self._label,
                    len(pcm) // BYTES_PER_MS,
                    MAX_BUFFER_MS // 1000,
                )
            self.dropped_bytes += len(pcm)
            return
        item = self._items.get(item_id)
        if item is None:
            item = self._items[item_id] = ItemPlayout(item_id)
            while len(self._items) > MAX_TRACKED_ITEMS:
                self._items.popitem(last=False)
        item.received_bytes += len(pcm)
        self._segments.append((item, pcm))
        self._buffered_bytes += len(pcm)
        if self._starved and self._wake is not None:
            _resolve(self._wake, True)

    def flush(self) -> ItemPlayout | None:
        """Drop all queued audio at once (barge-in); returns the item that was being played."""
        self._segments.clear()
        self._head_offset = 0
        self._buffered_bytes = 0
        return self._current

    async def recv(self) -> Packet[Any] | AudioFrame:
        pcm = await self.next_pcm()
        if self._encoder is None:
            assert self._to_webrtc is not None
            return self._to_webrtc.frame(pcm, self._pts)
        return self._encoder.encode(pcm, self._pts, silent=pcm is SILENCE)

    async def next_pcm(self) -> bytes:
        """The next 20 ms of pcm16 24 kHz audio, when it is due (`SILENCE` if nothing is queued)."""
        if self.readyState != "live":
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        else:
            self._pts += FRAME_SAMPLES
            if self._has_spare_audio():
                self._start -= FRAME_S
            wait = self._start + self._pts * FRAME_S / FRAME_SAMPLES - loop.time()
            if wait > 0 and await self._sleep(loop, wait):
                self._start = loop.time() - self._pts * FRAME_S / FRAME_SAMPLES
            elif wait < -LATE_RESET_S:
                self.late_frames += 1
                self._start = loop.time() - self._pts * FRAME_S / FRAME_SAMPLES
            if self.readyState != "live":
                raise MediaStreamError
        return self._next_pcm()

    def _has_spare_audio(self) -> bool:
        """True when this frame may go out early: the buffer has kept a frame it never needed."""
        if not self._options.catch_up:
            return False
        if CATCH_UP_MIN_MS * BYTES_PER_MS <= self._buffered_bytes <= CATCH_UP_MAX_MS * BYTES_PER_MS:
            self._spare_frames += 1
        else:
            self._spare_frames = 0
        spare = self._spare_frames - CATCH_UP_STABLE_FRAMES
        return spare >= 0 and spare % CATCH_UP_EVERY_FRAMES == 0

    async def _sleep(self, loop: asyncio.AbstractEventLoop, delay: float) -> bool:
        """Wait `delay` seconds; True if audio arrived after an underrun and ended it sooner."""
        if not self._options.wake_on_audio:
            await asyncio.sleep(delay)
            return False
        wake: asyncio.Future[bool] = loop.create_future()
        self._wake = wake
        timer = loop.call_later(delay, _resolve, wake, False)
        try:
            return await wake
        finally:
            timer.cancel()
            self._wake = None

    def _next_pcm(self) -> bytes:
        if not self._segments:
            self._starved = True
            return SILENCE
        chunks: list[bytes] = []
        needed = FRAME_BYTES
        while needed and self._segments:
            item, pcm = self._segments[0]
            if item is not self._current:
                self._current = item
                if self._on_item_started is not None:
                    self._on_item_started(item.item_id)
            take = pcm[self._head_offset : self._head_offset + needed]
            chunks.append(take)
            item.sent_bytes += len(take)
            needed -= len(take)
            self._head_offset += len(take)
            if self._head_offset >= len(pcm):
                self._segments.popleft()
                self._head_offset = 0
        self._buffered_bytes -= FRAME_BYTES - needed
        self._starved = needed > 0
        if needed:
            chunks.append(SILENCE[:needed])
        if not self._segments and self._on_drained is not None:
            self._on_drained()
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _resolve(future: asyncio.Future[bool], value: bool) -> None:
    if not future.done():
        future.set_result(value)
