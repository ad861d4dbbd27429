"""Speech recognition of pcm16 24 kHz utterances with Whisper, and the recognizer processes'
main loop (`python -m localmodel.asr`, see recognizers.py).

Whisper recognises a whole utterance at a time, so a `SpeechRecognizer` gathers the audio as it
is spoken, and each `partial()` or `finish()` is one Whisper pass over all of it (the last
pass is reused when no audio came since). The caller decides when a pass is worth it: the
listener asks every second or so of speech, and at a pause.
"""

from __future__ import annotations

import collections
import logging
import os
import struct
import sys
import threading
from concurrent.futures import Future
from typing import BinaryIO

import numpy as np

from protocol.audio import PCM_RATE_HZ
from protocol.resample import PcmResampler

from .once import process_wide
from .whisper import SAMPLE_RATE_HZ, WhisperRecognizer

logger = logging.getLogger(__name__)

# Threads of one recognizer process's Whisper: one per process, the processes share the cores.
WHISPER_THREADS = 1
MAX_UTTERANCE_S = 30  # older audio of a longer utterance is dropped (Whisper's window)


@process_wide
def shared_whisper() -> WhisperRecognizer:
    """The process's Whisper model (loaded on first use, ~1.5 s), shared by its streams."""
    return WhisperRecognizer(threads=WHISPER_THREADS)


class SpeechRecognizer:
    """One stream's utterances; methods are thread-safe, passes run one at a time."""

    def __init__(self, model: WhisperRecognizer | None = None) -> None:
        self._model = model
        self._lock = threading.Lock()
        self._resampler = PcmResampler(PCM_RATE_HZ, SAMPLE_RATE_HZ)
        self._chunks: list[bytes] | None = None  # pcm16 16 kHz of the open utterance
        self._language: str | None = None
        self._recognized: tuple[int, str] | None = None  # (bytes covered, text) of the last pass
        self.language = ""  # the language of the last pass

    @property
    def active(self) -> bool:
        return self._chunks is not None

    def start(self, language: str | None = None) -> None:
        """Begin an utterance (abandoning one still open) in `language`, or detect en/zh."""
        with self._lock:
            self._abandon()
            self._chunks = []
            self._language = language or None

    def feed(self, pcm24k: bytes) -> None:
        """More of the utterance: pcm16 24 kHz mono, any length."""
        with self._lock:
            if self._chunks is None:
                raise RuntimeError("no utterance: call start() first")
            pcm16k = self._resampler.convert(pcm24k)
            if pcm16k:
                self._chunks.append(pcm16k)

    def partial(self) -> str:
        """The text of the utterance so far (a pass; empty between utterances)."""
        with self._lock:
            return self._recognize() if self._chunks is not None else ""

    def request_partial(self, urgent: bool = False) -> Future[str]:
        """partial(), as a future (done at once: here, nothing is waited for)."""
        future: Future[str] = Future()
        future.set_result(self.partial())
        return future

    def finish(self) -> str:
        """End the utterance and return its transcript (empty if none was started)."""
        with self._lock:
            if self._chunks is None:
                return ""
            try:
                covered = sum(map(len, self._chunks))
                if self._recognized is not None and self._recognized[0] == covered:
                    return self._recognized[1]  # the last pass heard it all (but a few ms)
                self._chunks.append(self._resampler.flush())
                return self._recognize()
            finally:
                self._abandon()

    def cancel(self) -> None:
        """Drop the utterance without recognising the rest."""
        with self._lock:
            self._abandon()

    def close(self) -> None:
        self.cancel()

    def _recognize(self) -> str:
        assert self._chunks is not None
        pcm = b"".join(self._chunks)
        self._chunks = [pcm]
        if not pcm:
            return ""
        if self._recognized is not None and self._recognized[0] == len(pcm):
            return self._recognized[1]  # nothing new since the last pass
        limit = MAX_UTTERANCE_S * SAMPLE_RATE_HZ * 2
        samples = np.frombuffer(pcm[-limit:], "<i2").astype(np.float32) / 32768
        model = self._model or shared_whisper()
        heard = model.transcribe(samples, self._language)
        self._recognized = (len(pcm), heard.text)
        self.language = heard.language
        return heard.text

    def _abandon(self) -> None:
        self._chunks = None
        self._recognized = None
        self._resampler.reset()


# -- the recognizer process ------------------------------------------------------------------
# A pass takes 0.1-0.4 s of CPU and holds the GIL for its feature extraction (numpy), so
# recognition in a thread would stall the event loop and every other session. `recognizers.py`
# runs it in child processes instead; this is their side of a small binary protocol over
# stdin/stdout:
# request = REQUEST header (op, stream, request id, payload length) + payload,
# reply = REPLY header (request id, status, payload length) + UTF-8 payload.

REQUEST = struct.Struct("<BIII")
REPLY = struct.Struct("<IBI")
OP_OPEN, OP_START, OP_FEED, OP_PARTIAL, OP_FINISH, OP_CANCEL, OP_CLOSE, OP_LOAD, OP_PAUSE = range(
    1, 10
)
REPLY_OPS = frozenset({OP_PARTIAL, OP_FINISH, OP_LOAD, OP_PAUSE})
# A pass whose result the user waits for: at a pause (its text is kept if the turn ends
# there) and at the end. Served before the passes of streams still being spoken.
URGENT_OPS = frozenset({OP_FINISH, OP_PAUSE})
STATUS_OK, STATUS_ERROR = 0, 1


def serve_stdio() -> None:
    """Recognise streams for a parent process until stdin closes (the child's main loop)."""
    # Protocol replies get their own descriptor; anything a library prints goes to stderr.
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    requests = _RequestQueue(sys.stdin.buffer)
    streams: dict[int, SpeechRecognizer] = {}
    while (batch := requests.next_batch()) is not None:
        for index, (op, stream, request, payload) in enumerate(batch):
            status, text = STATUS_OK, ""
            try:
                if op == OP_OPEN:
                    streams[stream] = SpeechRecognizer()
                elif op == OP_CLOSE:
                    recognizer = streams.pop(stream, None)
                    if recognizer is not None:
                        recognizer.close()
                elif op == OP_LOAD:
                    shared_whisper()
                elif op in (OP_PARTIAL, OP_PAUSE) and (
                    _superseded(batch, index) or requests.queued_pass(stream)
                ):
                    pass  # stale: a later pass of the same stream is already queued
                else:
                    text = _apply(streams[stream], op, payload)
            except Exception as exc:  # reported to the caller, the process keeps serving
                status, text = STATUS_ERROR, f"{type(exc).__name__}: {exc}"
            if op in REPLY_OPS:
                data = text.encode()
                replies.write(REPLY.pack(request, status, len(data)) + data)
                replies.flush()
            elif status == STATUS_ERROR:
                logger.warning("recognizer stream %d: %s", stream, text)


_Request = tuple[int, int, int, bytes]  # op, stream, request id, payload


PASS_OPS = frozenset({OP_PARTIAL, OP_PAUSE, OP_FINISH})


def _superseded(batch: list[_Request], index: int) -> bool:
    return any(op in PASS_OPS for op, _, _, _ in batch[index + 1 :])


class _RequestQueue:
    """Requests read on a thread into one queue per stream, served round-robin, except that a
    stream with a queued urgent pass (its turn has ended, or paused) goes first, with all of
    its requests up to that pass: its user waits for the answer, the others still speak."""

    def __init__(self, source: BinaryIO) -> None:
        self._source = source
        self._changed = threading.Condition()
        self._queues: dict[int, collections.deque[_Request]] = {}
        self._turns: collections.deque[int] = collections.deque()  # streams with requests
        self._ending: collections.deque[int] = collections.deque()  # ...an urgent one each
        self._closed = False
        threading.Thread(target=self._read, name="asr-requests", daemon=True).start()

    def next_batch(self) -> list[_Request] | None:
        """The requests to carry out next (one stream's, up to its urgent pass), None at EOF."""
        with self._changed:
            while not self._turns:
                if self._closed:
                    return None
                self._changed.wait()
            if self._ending:
                stream = self._ending.popleft()
                queue = self._queues[stream]
                batch = [queue.popleft()]
                while batch[-1][0] not in URGENT_OPS:
                    batch.append(queue.popleft())
                self._turns.remove(stream)
            else:
                stream = self._turns.popleft()
                queue = self._queues[stream]
                batch = [queue.popleft()]
                # Its feeds and a pass at once: a pass reads all the audio anyway.
                while queue and queue[0][0] not in URGENT_OPS:
                    batch.append(queue.popleft())
            if queue:
                self._turns.append(stream)
            else:
                del self._queues[stream]
            return batch

    def queued_pass(self, stream: int) -> bool:
        """Whether a pass of `stream` waits in the queue (an earlier one would be stale)."""
        with self._changed:
            return any(op in PASS_OPS for op, _, _, _ in self._queues.get(stream, ()))

    def _read(self) -> None:
        while True:
            header = _read_exactly(self._source, REQUEST.size)
            if header is None:
                break
            op, stream, request, length = REQUEST.unpack(header)
            payload = (_read_exactly(self._source, length) or b"") if length else b""
            with self._changed:
                queue = self._queues.get(stream)
                if queue is None:
                    queue = self._queues[stream] = collections.deque()
                    self._turns.append(stream)
                queue.append((op, stream, request, payload))
                if op in URGENT_OPS:
                    self._ending.append(stream)
                self._changed.notify()
        with self._changed:
            self._closed = True
            self._changed.notify()


def _apply(recognizer: SpeechRecognizer, op: int, payload: bytes) -> str:
    if op == OP_START:
        recognizer.start(payload.decode() or None)
    elif op == OP_FEED:
        if recognizer.active:  # feeds after a failed start are dropped, not reported each time
            recognizer.feed(payload)
    elif op in (OP_PARTIAL, OP_PAUSE):
        return recognizer.partial()
    elif op == OP_FINISH:
        return recognizer.finish()
    elif op == OP_CANCEL:
        recognizer.cancel()
    else:
        raise ValueError(f"unknown op {op}")
    return ""


def _read_exactly(stream: BinaryIO, size: int) -> bytes | None:
    data = stream.read(size)
    return data if len(data) == size else None


if __name__ == "__main__":
    serve_stdio()
