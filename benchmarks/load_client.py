"""One load-client process: N real aiortc peers against one server, measured per peer.

Each peer posts its offer to `/api/sessions`, opens an `events` data channel like a page and
streams pre-encoded audio at real-time pace (no encoding, no audio-level work on the client).
With the `markers` probe it sends marker audio and finds its markers in what comes back; with
the `speech` probe (benchmarks/speech_probe.py) it asks spoken questions and times the replies.
Started by `relay_bench`, which speaks to it in JSON lines:

    stdout  {"ready": true}                       after imports and encoding, before any peer
    stdin   {"t0": <time.monotonic() to start>}
    stdout  {"peers": [...per-peer results...], "send_lag_ms": {...}}

Peer i connects at t0 + starts[i] and streams once connected (the relay: once its data channel
says `listening`); markers sent in [t0 + window_start, t0 + window_end] count.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import av
import httpx
from aiortc import RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from relay.audio import WEBRTC_RATE_HZ
from relay.peer import create_peer_connection

from .markers import (
    CYCLE_FRAMES,
    WEBRTC_FRAME_SAMPLES,
    MarkerDetector,
    MarkerLog,
    encode_cycle,
)
from .paced_track import PacedPacketTrack
from .speech_probe import (
    Question,
    QuestionTrack,
    ReplyListener,
    TurnResult,
    converse,
    encode_questions,
)

CONNECT_TIMEOUT_S = 15.0
LATE_MARGIN_S = (
    0.060  # a frame this much later than its session's median misses a browser's jitter buffer
)


class MarkerTrack(PacedPacketTrack):
    """Sends the pre-encoded marker cycle once armed."""

    def __init__(self, packets: list[bytes], offset: int, log: MarkerLog) -> None:
        super().__init__()
        self._packets = packets
        self._offset = offset
        self._log = log
        self.armed = asyncio.Event()

    async def ready(self) -> None:
        await self.armed.wait()

    def payload(self, index: int, now: float) -> bytes:
        position = self._offset + index
        self._log.record(position, now)
        return self._packets[position % CYCLE_FRAMES]


@dataclass
class PeerResult:
    index: int
    ok: bool = False
    error: str | None = None
    status: int | None = None
    offer_answer_ms: float | None = None
    connect_ms: float | None = None
    listening_ms: float | None = None
    first_audio_ms: float | None = None
    latencies_ms: list[float] = field(default_factory=list)
    markers_sent: int = 0
    markers_found: int = 0
    markers_late: int = 0
    unknown_bursts: int = 0
    frames_expected: int = 0
    frames_received: int = 0
    frames_late: int = 0
    turns_asked: int = 0
    turns_answered: int = 0


@dataclass(frozen=True)
class SpeechScript:
    questions: list[Question]
    silent_packet: bytes


class Peer:
    def __init__(
        self,
        index: int,
        packets: list[bytes],
        offset: int,
        script: SpeechScript | None,
        host_address: str,
    ) -> None:
        self.result = PeerResult(index)
        self.log = MarkerLog()
        self.detector: MarkerDetector | ReplyListener = MarkerDetector(self.log)
        self.pc = create_peer_connection([], host_addresses=[host_address])
        self.track: MarkerTrack | QuestionTrack = MarkerTrack(packets, offset, self.log)
        self.script = script
        self.turns: list[TurnResult] = []
        if script is not None:
            self.detector = ReplyListener()
            self.track = QuestionTrack(script.silent_packet)
        self.pc.addTrack(self.track)
        self.channel = self.pc.createDataChannel("events")
        self.channel.on("message", self._on_message)
        self.listening = asyncio.Event()
        self.frames: list[tuple[float, int]] = []  # (arrival time, pts)
        self.connected = asyncio.Event()
        self._recorder: asyncio.Task[None] | None = None
        self.session_id: str | None = None
        self.pc.on("track", self._on_track)
        self.pc.on("connectionstatechange", self._on_state)

    def _on_message(self, message: str | bytes) -> None:
        event = json.loads(message)
        if event.get("type") == "state" and event.get("state") == "listening":
            self.listening.set()

    def _on_state(self) -> None:
        if self.pc.connectionState == "connected":
            self.connected.set()

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio" and self._recorder is None:
            self._recorder = asyncio.create_task(self._record(track))

    async def _record(self, track: MediaStreamTrack) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                frame = await track.recv()
                t = loop.time()
                assert isinstance(frame, av.AudioFrame)
                self.frames.append((t, int(frame.pts or 0)))
                self.detector.feed(frame, t)
        except MediaStreamError:
            return

    async def run(
        self, http: httpx.AsyncClient, start: float, end: float, wait_listening: bool
    ) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(max(0.0, start - loop.time()))
        try:
            await self.pc.setLocalDescription(await self.pc.createOffer())
            offer = self.pc.localDescription
            posted = loop.time()
            response = await http.post("/api/sessions", json={"sdp": offer.sdp, "type": offer.type})
            self.result.offer_answer_ms = (loop.time() - posted) * 1000
            self.result.status = response.status_code
            if response.status_code != 201:
                self.result.error = f"HTTP {response.status_code}: {response.text[:200]}"
                return
            body = response.json()
            self.session_id = body["session_id"]
            await self.pc.setRemoteDescription(RTCSessionDescription(body["sdp"], body["type"]))
            await asyncio.wait_for(self.connected.wait(), CONNECT_TIMEOUT_S)
            self.result.connect_ms = (loop.time() - posted) * 1000
            if wait_listening:
                # Audio sent before the backend is connected is queued by the relay and would
                # come back as one burst, delaying the whole stream: start once it listens.
                await asyncio.wait_for(self.listening.wait(), CONNECT_TIMEOUT_S)
                self.result.listening_ms = (loop.time() - posted) * 1000
            self.result.ok = True
            if isinstance(self.track, MarkerTrack):
                self.track.armed.set()
            else:
                assert self.script is not None and isinstance(self.detector, ReplyListener)
                rng = random.Random(self.result.index)
                self.turns = await converse(
                    self.track, self.detector, self.script.questions, end, rng
                )
            await asyncio.sleep(max(0.0, end - loop.time()))
            if self.frames:
                self.result.first_audio_ms = (self.frames[0][0] - posted) * 1000
        except Exception as exc:  # a benchmark reports failures instead of stopping
            self.result.error = f"{type(exc).__name__}: {exc}"

    async def hang_up(self, http: httpx.AsyncClient) -> None:
        if self.session_id is not None:
            try:
                await http.delete(f"/api/sessions/{self.session_id}")
            except httpx.HTTPError:
                pass
        await self.pc.close()
        if self._recorder is not None:
            self._recorder.cancel()
            await asyncio.gather(self._recorder, return_exceptions=True)

    def summarize(self, window: tuple[float, float]) -> PeerResult:
        result = self.result
        first, last = window
        if self.script is not None:
            turns = [t for t in self.turns if first <= t.asked_at <= last]
            answered = [t.latency_s for t in turns if t.latency_s is not None]
            result.turns_asked, result.turns_answered = len(turns), len(answered)
            result.latencies_ms = [round(x * 1000, 2) for x in answered]
            return result
        assert isinstance(self.detector, MarkerDetector)
        sent = {m for m, t in self.log.sent.items() if first <= t <= last}
        latencies = [a.latency_s for a in self.detector.arrivals if a.marker in sent]
        result.markers_sent = len(sent)
        result.markers_found = len(latencies)
        result.latencies_ms = [round(x * 1000, 2) for x in latencies]
        result.unknown_bursts = self.detector.unknown_bursts
        if latencies:
            median = statistics.median(latencies)
            result.markers_late = sum(x > median + LATE_MARGIN_S for x in latencies)
        frames = [(t, pts) for t, pts in self.frames if first <= t <= last]
        if len(frames) > 1:
            lags = [t - pts / WEBRTC_RATE_HZ for t, pts in frames]
            median = statistics.median(lags)
            result.frames_late = sum(lag > median + LATE_MARGIN_S for lag in lags)
            result.frames_received = len({pts for _, pts in frames})
            span = max(pts for _, pts in frames) - min(pts for _, pts in frames)
            result.frames_expected = span // WEBRTC_FRAME_SAMPLES + 1
        return result


def percentiles_ms(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)

    return {"p50": at(0.50), "p99": at(0.99), "max": round(ordered[-1] * 1000, 2)}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    packets = encode_cycle()
    script = SpeechScript(*encode_questions()) if args.probe == "speech" else None
    starts = [float(s) for s in args.starts.split(",")]
    peers = [
        Peer(
            args.first_index + i,
            packets,
            (17 + 37 * (args.first_index + i)) % CYCLE_FRAMES,
            script,
            args.ice_address,
        )
        for i in range(len(starts))
    ]
    print(json.dumps({"ready": True}), flush=True)  # noqa: T201
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    t0 = float(json.loads(line)["t0"])
    # The parent measures in time.monotonic(); asyncio's clock is the same clock on Linux.
    offset = asyncio.get_running_loop().time() - time.monotonic()
    window = (t0 + args.window_start + offset, t0 + args.window_end + offset)
    end = window[1] + args.drain
    limits = httpx.Limits(max_connections=len(peers) + 1)
    async with httpx.AsyncClient(base_url=args.url, timeout=20.0, limits=limits) as http:
        try:
            async with asyncio.timeout(end - asyncio.get_running_loop().time() + 30):
                await asyncio.gather(
                    *(
                        p.run(http, t0 + offset + s, end, args.wait_listening)
                        for p, s in zip(peers, starts, strict=True)
                    )
                )
        finally:
            await asyncio.gather(*(p.hang_up(http) for p in peers), return_exceptions=True)
    lags = [lag for p in peers for lag in p.track.lag_s]
    return {
        "peers": [asdict(p.summarize(window)) for p in peers],
        "send_lag_ms": percentiles_ms(lags),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.load_client")
    parser.add_argument("--url", required=True, help="server base URL, e.g. http://127.0.0.1:8000")
    parser.add_argument(
        "--starts", required=True, help="comma-separated start offsets (s) per peer"
    )
    parser.add_argument("--first-index", type=int, default=0)
    parser.add_argument("--window-start", type=float, required=True)
    parser.add_argument("--window-end", type=float, required=True)
    parser.add_argument("--drain", type=float, default=1.0)
    parser.add_argument("--ice-address", default="127.0.0.1")
    parser.add_argument("--probe", choices=("markers", "speech"), default="markers")
    parser.add_argument(
        "--wait-listening",
        action="store_true",
        help="stream only after the server's data channel says state 'listening' (the relay)",
    )
    args = parser.parse_args()
    result = asyncio.run(run(args))
    print(json.dumps(result), flush=True)  # noqa: T201


if __name__ == "__main__":
    main()
