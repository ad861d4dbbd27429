"""Test media: envelope analysis, a track that plays audio then silence, and a real client peer.

The audio itself comes from tests/speech.py.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import av
import numpy as np
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from protocol.audio import FRAME_BYTES, FRAME_S, FRAME_SAMPLES, PCM_RATE_HZ
from relay.audio import FrameResampler, pcm_frame
from relay.media import MediaOptions
from relay.peer import create_peer_connection
from relay.playout import PlayoutTrack

LOOPBACK = "127.0.0.1"  # test peers, like the app under test, gather host candidates only here


def samples(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0


def envelope(pcm: bytes, window_ms: int = 10) -> np.ndarray:
    x = samples(pcm)
    n = PCM_RATE_HZ * window_ms // 1000
    x = x[: len(x) // n * n].reshape(-1, n)
    return np.sqrt((x**2).mean(axis=1))


def envelope_correlation(sent: bytes, received: bytes) -> float:
    """Peak normalized cross-correlation of the two loudness envelopes, over all lags."""
    a, b = envelope(sent), envelope(received)
    a = (a - a.mean()) / (a.std() + 1e-9)
    b = (b - b.mean()) / (b.std() + 1e-9)
    full = np.correlate(b, a, mode="valid") if len(b) >= len(a) else np.correlate(a, b, "valid")
    return float(full.max() / min(len(a), len(b)))


class SpeechTrack(MediaStreamTrack):
    """Plays pcm16 24 kHz audio in paced 20 ms frames, then silence forever (as a live mic).

    Paced by the relay's own playout, as a plain real-time stream (no wake, no catch-up).
    """

    kind = "audio"

    def __init__(self, pcm: bytes = b"", leading_silence_s: float = 0.5) -> None:
        super().__init__()
        self.finished = asyncio.Event()
        plain = MediaOptions(wake_on_audio=False, catch_up=False)
        self._paced = PlayoutTrack(on_drained=self.finished.set, options=plain)
        self._paced.push(None, bytes(int(leading_silence_s * PCM_RATE_HZ) * 2) + pcm)
        self._pts = -FRAME_SAMPLES

    async def recv(self) -> av.AudioFrame:
        pcm = await self._paced.next_pcm()  # MediaStreamError once stopped
        self._pts += FRAME_SAMPLES
        return pcm_frame(pcm, self._pts)

    def stop(self) -> None:
        super().stop()
        self._paced.stop()


class ClientPeer:
    """A real aiortc peer acting as a browser: sends a track, records audio and events."""

    def __init__(self, track: MediaStreamTrack | None = None, data_channel: bool = True) -> None:
        self.pc: RTCPeerConnection = create_peer_connection([], host_addresses=[LOOPBACK])
        self.track = track or SpeechTrack()
        self.pc.addTrack(self.track)
        self.received = bytearray()
        self.received_times: list[float] = []
        self.events: list[dict[str, Any]] = []
        self.channel = self.pc.createDataChannel("events") if data_channel else None
        if self.channel is not None:
            self.channel.on("message", lambda m: self.events.append(json.loads(m)))
        self._recorder: asyncio.Task[None] | None = None
        self.pc.on("track", self._on_track)
        self.session_id: str | None = None

    def _on_track(self, track: MediaStreamTrack) -> None:
        self._recorder = asyncio.create_task(self._record(track))

    async def _record(self, track: MediaStreamTrack) -> None:
        resampler = FrameResampler()
        loop = asyncio.get_running_loop()
        try:
            while True:
                frame = await track.recv()
                self.received += resampler.convert(frame)  # type: ignore[arg-type]
                self.received_times.append(loop.time())
        except MediaStreamError:
            return

    async def offer(self) -> RTCSessionDescription:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        description = self.pc.localDescription
        assert description is not None
        return description

    async def connect(self, http: Any) -> dict[str, Any]:
        offer = await self.offer()
        response = await http.post("/api/sessions", json={"sdp": offer.sdp, "type": offer.type})
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        self.session_id = body["session_id"]
        await self.pc.setRemoteDescription(RTCSessionDescription(body["sdp"], body["type"]))
        return body

    def send(self, event: dict[str, Any]) -> None:
        assert self.channel is not None
        self.channel.send(json.dumps(event))

    def events_of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("type") == kind]

    def received_since(self, seconds: float) -> bytes:
        return bytes(self.received[-int(seconds / FRAME_S) * FRAME_BYTES :])

    async def close(self) -> None:
        await self.pc.close()
        if self._recorder is not None:
            self._recorder.cancel()
            await asyncio.gather(self._recorder, return_exceptions=True)
