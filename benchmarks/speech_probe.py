"""The `speech` probe: a peer that asks spoken questions and times the spoken replies.

Voice-to-voice latency is measured as a person hears it: from the moment the last voiced
20 ms of a question leaves the peer to the first reply audio louder than REPLY_DBFS arriving
back (decoded, after both jitter buffers). Questions are piper speech, Opus-encoded once per
process; between them the peer sends silence, like an open microphone, and thinks 0.5-2 s
after each reply ends.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections import deque
from dataclasses import dataclass

import av
import numpy as np

from protocol.audio import FRAME_BYTES, FRAME_S
from relay.opus import PlayoutEncoder

from .assistant_latency import QUESTIONS, speech
from .paced_track import PacedPacketTrack

REPLY_DBFS = -40.0  # louder than this is the assistant speaking (the relay's silence is 0)
REPLY_END_S = 0.6  # this much quiet ends a reply
ANSWER_TIMEOUT_S = 15.0
THINK_S = (0.5, 2.0)


@dataclass(frozen=True)
class Question:
    text: str
    packets: list[bytes]
    voiced_frames: int  # packets up to the end of the voice; the rest is its quiet tail


def encode_questions() -> tuple[list[Question], bytes]:
    """Every question as Opus packets, and the packet for a silent frame."""
    encoder = PlayoutEncoder()
    questions = []
    for text, (pcm, voiced_ms) in speech(list(QUESTIONS)).items():
        pcm += bytes(-len(pcm) % FRAME_BYTES)
        frames = [pcm[i : i + FRAME_BYTES] for i in range(0, len(pcm), FRAME_BYTES)]
        packets = [bytes(encoder.encode(f, 0)) for f in frames]
        questions.append(Question(text, packets, math.ceil(voiced_ms / 1000 / FRAME_S)))
    silent = b""
    for _ in range(50):  # until the encoder codes digital silence
        silent = bytes(encoder.encode(bytes(FRAME_BYTES), 0, silent=True))
    return questions, silent


class QuestionTrack(PacedPacketTrack):
    """Paced Opus packets: a question when one is asked, else silence."""

    def __init__(self, silent_packet: bytes) -> None:
        super().__init__()
        self._silent = silent_packet
        self._queue: deque[bytes] = deque()
        self._voice_end: tuple[int, asyncio.Future[float]] | None = None

    def ask(self, question: Question) -> asyncio.Future[float]:
        """Queue `question`; the future gets the time its last voiced packet was sent."""
        done: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._voice_end = (len(self._queue) + question.voiced_frames, done)
        self._queue.extend(question.packets)
        return done

    def payload(self, index: int, now: float) -> bytes:
        data = self._queue.popleft() if self._queue else self._silent
        if self._voice_end is not None:
            left, done = self._voice_end
            self._voice_end = (left - 1, done) if left > 1 else None
            if left <= 1 and not done.done():
                done.set_result(now)
        return data


class ReplyListener:
    """Watches decoded audio for the start and end of each reply."""

    def __init__(self) -> None:
        self._threshold = 32768 * 10 ** (REPLY_DBFS / 20)
        self.loud_at: float | None = None  # the last loud frame
        self._onset = asyncio.Event()
        self.onset_at: float | None = None

    def feed(self, frame: av.AudioFrame, t: float) -> None:
        pcm = np.frombuffer(memoryview(frame.planes[0]), np.int16, frame.samples)
        if float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2))) > self._threshold:
            if not self._onset.is_set():
                self.onset_at = t
                self._onset.set()
            self.loud_at = t

    def expect(self) -> None:
        """Arm for the next reply."""
        self._onset.clear()
        self.onset_at = None

    async def onset(self, timeout_s: float) -> float | None:
        try:
            await asyncio.wait_for(self._onset.wait(), timeout_s)
        except TimeoutError:
            return None
        return self.onset_at

    async def quiet(self, quiet_s: float = REPLY_END_S, timeout_s: float = 30.0) -> None:
        """Until no loud audio for `quiet_s` (a reply, or a greeting, has ended)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while loop.time() < deadline:
            last = self.loud_at
            if last is None or loop.time() - last >= quiet_s:
                return
            await asyncio.sleep(quiet_s - (loop.time() - last))


@dataclass
class TurnResult:
    asked_at: float
    latency_s: float | None


async def converse(
    track: QuestionTrack,
    listener: ReplyListener,
    questions: list[Question],
    end: float,
    rng: random.Random,
) -> list[TurnResult]:
    """Ask questions in turn until `end`; one result per question asked."""
    loop = asyncio.get_running_loop()
    turns: list[TurnResult] = []
    await asyncio.sleep(1.0)
    await listener.quiet()  # a greeting, if the persona has one, plays first
    await asyncio.sleep(rng.uniform(*THINK_S))
    while loop.time() < end - ANSWER_TIMEOUT_S / 3:
        question = questions[len(turns) % len(questions)]
        asked_at = loop.time()
        voice_end = track.ask(question)
        listener.expect()
        spoken = await voice_end
        onset = await listener.onset(ANSWER_TIMEOUT_S)
        turns.append(TurnResult(asked_at, None if onset is None else onset - spoken))
        await listener.quiet()
        await asyncio.sleep(rng.uniform(*THINK_S))
    return turns
