"""Streaming speech recognition of pcm16 24 kHz utterances with pocketsphinx and its en-us model."""

from __future__ import annotations

import collections
import dataclasses
import logging
import os
import struct
import sys
import threading
import time
from concurrent.futures import Future
from typing import BinaryIO

from pocketsphinx import Decoder

from protocol.audio import PCM_RATE_HZ, RECOGNIZER_RATE_HZ
from protocol.resample import PcmResampler

from .once import process_wide

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class DecoderOptions:
    """Search passes of the decoder.

    The end-of-turn cost is what `finish()` does after the user stops: the first (fwdtree) pass
    already ran while they spoke. Measured on 20 piper sentences with 0.5 s trailing silence, on
    a busy 2-core machine: both later passes on, 67-92 ms median and 17-22 % WER; fwdflat off,
    11-47 ms and 18-21 %; fwdflat and bestpath off, 8-34 ms and 17-20 %. The later passes buy
    little accuracy on short turns, so both are off: the final transcript is then also what
    `partial()` showed last.

    `max_hmms_per_frame` caps the search (pocketsphinx's default, 30000, is no cap). On 24
    piper questions the decoder then needs 0.13-0.14 s of CPU per second of audio instead of
    0.28-0.35, the end of an utterance 11 ms instead of 45-50, and the word error rate went
    from 13.5 % to 11.5 % (at 1000 it rises to 16.7 %).
    """

    fwdflat: bool = False
    bestpath: bool = False
    cmn_init: str = "40,3,-1"
    max_hmms_per_frame: int = 2000


class RecognizerModel:
    """The en-us model shared by a process: a pool of loaded decoders, lent per utterance.

    A pocketsphinx decoder holds the acoustic and language models (about 90 MB, 0.5 s to load)
    and cannot share them, so decoders are lent out for one utterance at a time: a process
    loads as many as utterances are decoded at once, not one per session.
    """

    def __init__(self, options: DecoderOptions | None = None) -> None:
        self.options = options or DecoderOptions()
        self._lock = threading.Lock()
        self._idle: list[Decoder] = []
        self._loaded = 0

    @property
    def loaded(self) -> int:
        return self._loaded

    def trim(self, keep: int) -> None:
        """Unload idle decoders until at most `keep` are loaded."""
        with self._lock:
            while self._idle and self._loaded > keep:
                self._idle.pop()
                self._loaded -= 1

    def preload(self, count: int = 1) -> None:
        """Load decoders now (e.g. at startup) so the first turn does not pay for it."""
        for decoder in [self.acquire() for _ in range(count)]:
            self.release(decoder)

    def ensure_loaded(self, total: int) -> None:
        """Load decoders until `total` exist (lent or idle)."""
        while self.loaded < total:
            self.release(self._load())

    def acquire(self) -> Decoder:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return self._load()

    def _load(self) -> Decoder:
        started = time.perf_counter()
        decoder = Decoder(
            samprate=RECOGNIZER_RATE_HZ,
            fwdflat=self.options.fwdflat,
            bestpath=self.options.bestpath,
            cmninit=self.options.cmn_init,
            maxhmmpf=self.options.max_hmms_per_frame,
            loglevel="FATAL",
        )
        with self._lock:
            self._loaded += 1
            loaded = self._loaded
        logger.info(
            "loaded pocketsphinx decoder %d in %.2f s", loaded, time.perf_counter() - started
        )
        return decoder

    def release(self, decoder: Decoder) -> None:
        with self._lock:
            self._idle.append(decoder)


@process_wide
def shared_recognizer_model() -> RecognizerModel:
    """The process-wide model with the default options."""
    return RecognizerModel()


class SpeechRecognizer:
    """Decodes one utterance at a time while it is spoken; methods are thread-safe."""

    def __init__(self, model: RecognizerModel | None = None) -> None:
        self._model = model or shared_recognizer_model()
        self._lock = threading.Lock()
        self._decoder: Decoder | None = None
        self._resampler = PcmResampler(PCM_RATE_HZ, RECOGNIZER_RATE_HZ)
        # Cepstral mean of this speaker: kept across utterances, since decoders are shared.
        self._cmn: str | None = None

    @property
    def active(self) -> bool:
        return self._decoder is not None

    def start(self) -> None:
        """Begin an utterance (abandoning one still open)."""
        with self._lock:
            self._abandon()
            decoder = self._model.acquire()
            try:
                decoder.set_cmn(self._cmn or self._model.options.cmn_init)
                decoder.start_utt()
            except Exception:
                self._model.release(decoder)
                raise
            self._decoder = decoder

    def feed(self, pcm24k: bytes) -> None:
        """Decode more of the utterance: pcm16 24 kHz mono, any length."""
        with self._lock:
            if self._decoder is None:
                raise RuntimeError("no utterance: call start() first")
            pcm16k = self._resampler.convert(pcm24k)
            if pcm16k:
                self._decoder.process_raw(pcm16k)

    def partial(self) -> str:
        """The best hypothesis so far (empty between utterances)."""
        with self._lock:
            if self._decoder is None:
                return ""
            return _hypothesis(self._decoder)

    def request_partial(self) -> Future[str]:
        """partial(), as a future (done at once: here, nothing is waited for)."""
        future: Future[str] = Future()
        future.set_result(self.partial())
        return future

    def finish(self) -> str:
        """End the utterance and return its final transcript (empty if none was started)."""
        with self._lock:
            decoder, self._decoder = self._decoder, None
            if decoder is None:
                return ""
            try:
                decoder.process_raw(self._resampler.flush())
                decoder.end_utt()
                text = _hypothesis(decoder)
                self._cmn = decoder.get_cmn(False)
            finally:
                self._model.release(decoder)
            return text

    def cancel(self) -> None:
        """Drop the utterance without decoding the rest."""
        with self._lock:
            self._abandon()

    def close(self) -> None:
        self.cancel()

    def _abandon(self) -> None:
        decoder, self._decoder = self._decoder, None
        self._resampler.reset()
        if decoder is not None:
            try:
                decoder.end_utt()
            finally:
                self._model.release(decoder)


def _hypothesis(decoder: Decoder) -> str:
    hyp = decoder.hyp()
    return str(hyp.hypstr).strip() if hyp is not None else ""


# -- the decoding process ----------------------------------------------------------------------
# pocketsphinx holds the GIL while it decodes (5-10 ms per 20 ms of audio), so decoding in a
# thread would stall the event loop and every other session. `recognizers.py` runs decoders in
# child processes instead; this is their side of a small binary protocol over stdin/stdout:
# request = REQUEST header (op, stream, request id, payload length) + payload,
# reply = REPLY header (request id, status, payload length) + UTF-8 payload.

REQUEST = struct.Struct("<BIII")
REPLY = struct.Struct("<IBI")
OP_OPEN, OP_START, OP_FEED, OP_PARTIAL, OP_FINISH, OP_CANCEL, OP_CLOSE, OP_LOAD = range(1, 9)
REPLY_OPS = frozenset({OP_PARTIAL, OP_FINISH, OP_LOAD})
STATUS_OK, STATUS_ERROR = 0, 1


def serve_stdio() -> None:
    """Decode streams for a parent process until stdin closes (the child's main loop)."""
    # Protocol replies get their own descriptor; anything a library prints goes to stderr.
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    requests = _RequestQueue(sys.stdin.buffer)
    model = RecognizerModel()
    streams: dict[int, SpeechRecognizer] = {}
    while (batch := requests.next_batch()) is not None:
        for op, stream, request, payload in batch:
            status, text = STATUS_OK, ""
            try:
                # A decoder per session, loaded when it opens (a load stops this process for
                # 0.5 s: better now than in the middle of somebody's turn).
                if op == OP_OPEN:
                    streams[stream] = SpeechRecognizer(model)
                    model.ensure_loaded(len(streams))
                elif op == OP_CLOSE:
                    recognizer = streams.pop(stream, None)
                    if recognizer is not None:
                        recognizer.close()
                    model.trim(max(len(streams), 1))
                elif op == OP_LOAD:
                    model.preload()
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


class _RequestQueue:
    """Requests read on a thread into one queue per stream, served round-robin, except that a
    stream whose utterance has ended (a queued finish) goes first: its user waits for the
    answer, while the others are still speaking."""

    def __init__(self, source: BinaryIO) -> None:
        self._source = source
        self._changed = threading.Condition()
        self._queues: dict[int, collections.deque[_Request]] = {}
        self._turns: collections.deque[int] = collections.deque()  # streams with requests
        self._ending: collections.deque[int] = collections.deque()  # ...and a queued finish
        self._closed = False
        threading.Thread(target=self._read, name="asr-requests", daemon=True).start()

    def next_batch(self) -> list[_Request] | None:
        """The requests to carry out next (all of one stream's utterance end), None at EOF."""
        with self._changed:
            while not self._turns:
                if self._closed:
                    return None
                self._changed.wait()
            if self._ending:
                stream = self._ending.popleft()
                queue = self._queues[stream]
                batch = [queue.popleft()]
                while batch[-1][0] != OP_FINISH:
                    batch.append(queue.popleft())
                self._turns.remove(stream)
            else:
                stream = self._turns.popleft()
                queue = self._queues[stream]
                batch = [queue.popleft()]
            if queue:
                self._turns.append(stream)
            else:
                del self._queues[stream]
            return batch

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
                if op == OP_FINISH:
                    self._ending.append(stream)
                self._changed.notify()
        with self._changed:
            self._closed = True
            self._changed.notify()


def _apply(recognizer: SpeechRecognizer, op: int, payload: bytes) -> str:
    if op == OP_START:
        recognizer.start()
    elif op == OP_FEED:
        if recognizer.active:  # feeds after a failed start are dropped, not reported each time
            recognizer.feed(payload)
    elif op == OP_PARTIAL:
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
