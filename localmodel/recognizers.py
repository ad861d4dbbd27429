"""Speech recognition in child processes: a Whisper pass takes 0.1-0.4 s of a core (and holds
the GIL for its feature extraction), too much for the event loop's process.

Each child loads one Whisper model (~1.5 s) and serves many sessions' streams with it, a pass
at a time, serving a stream whose user waits (a pause or the end of its turn) before the
others. A stream stays on the child it was opened on; new streams go to the child with the
fewest. Children run `python -m localmodel.asr`, which loads CTranslate2, faster-whisper's
feature extractor and tokenizer, and soxr (`localmodel` imports nothing at package level).
"""

from __future__ import annotations

import atexit
import itertools
import logging
import os
import subprocess
import sys
import threading
from concurrent.futures import Future, TimeoutError
from typing import IO

from .asr import (
    OP_CANCEL,
    OP_CLOSE,
    OP_FEED,
    OP_FINISH,
    OP_LOAD,
    OP_OPEN,
    OP_PARTIAL,
    OP_PAUSE,
    OP_START,
    REPLY,
    REPLY_OPS,
    REQUEST,
    STATUS_OK,
)
from .once import process_wide

logger = logging.getLogger(__name__)

REPLY_TIMEOUT_S = 10.0
LOAD_TIMEOUT_S = 60.0
DEFAULT_PROCESSES = max(1, min(4, os.cpu_count() or 1))

CHILD_MODULE = "localmodel.asr"  # `python -m localmodel.asr` serves stdio


class RecognizerUnavailable(RuntimeError):
    """The recognizer process died or does not answer."""


class RecognizerProcess:
    """One child process and the replies it owes; thread-safe."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._process = subprocess.Popen(
            [sys.executable, "-m", CHILD_MODULE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
            # Out of the terminal's process group: Ctrl-C stops the server, which closes our
            # stdin; the child then exits by itself (also if the server dies).
            start_new_session=True,
        )
        assert self._process.stdin is not None and self._process.stdout is not None
        self._stdin: IO[bytes] = self._process.stdin
        self._lock = threading.Lock()
        self._pending: dict[int, Future[str]] = {}
        self._requests = itertools.count(1)
        self._streams = itertools.count(1)
        self._alive = True
        self.open_streams = 0
        self._reader = threading.Thread(
            target=self._read_replies, args=(self._process.stdout,), name=f"{name}-replies"
        )
        self._reader.daemon = True
        self._reader.start()

    @property
    def alive(self) -> bool:
        return self._alive

    @property
    def pid(self) -> int:
        return self._process.pid

    def open_stream(self) -> int:
        with self._lock:
            stream = next(self._streams)
            self.open_streams += 1
        self.send(OP_OPEN, stream)
        return stream

    def close_stream(self, stream: int) -> None:
        with self._lock:
            self.open_streams -= 1
        if self._alive:
            self.send(OP_CLOSE, stream)

    def send(self, op: int, stream: int = 0, payload: bytes = b"") -> Future[str]:
        """Queues one request; its future has the reply (at once for ops without a reply)."""
        future: Future[str] = Future()
        with self._lock:
            if not self._alive:
                raise RecognizerUnavailable(f"{self.name} has exited")
            request = next(self._requests)
            if op in REPLY_OPS:
                self._pending[request] = future
            else:
                future.set_result("")
            try:
                self._stdin.write(REQUEST.pack(op, stream, request, len(payload)) + payload)
                self._stdin.flush()
            except OSError as exc:  # the process has died; its reader thread cleans up
                self._pending.pop(request, None)
                self._alive = False
                raise RecognizerUnavailable(f"{self.name}: {exc}") from exc
        return future

    def ask(self, op: int, stream: int = 0, timeout_s: float = REPLY_TIMEOUT_S) -> str:
        try:
            return self.send(op, stream).result(timeout_s)
        except TimeoutError as exc:
            raise RecognizerUnavailable(f"{self.name} did not answer in {timeout_s} s") from exc

    def close(self) -> None:
        """Ends the process (it exits when its stdin closes) and waits for it."""
        self._end()
        self._reader.join(timeout=5)

    def _end(self) -> None:
        with self._lock:
            self._alive = False
            try:
                self._stdin.close()
            except OSError:  # unsent requests to a dead process
                pass
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def _read_replies(self, stdout: IO[bytes]) -> None:
        try:
            while True:
                header = stdout.read(REPLY.size)
                if len(header) < REPLY.size:
                    break
                request, status, length = REPLY.unpack(header)
                text = stdout.read(length).decode() if length else ""
                with self._lock:
                    future = self._pending.pop(request, None)
                if future is None:
                    continue
                if status == STATUS_OK:
                    future.set_result(text)
                else:
                    future.set_exception(RuntimeError(text))
        finally:
            stdout.close()
            with self._lock:
                self._alive = False
                pending, self._pending = list(self._pending.values()), {}
            for future in pending:
                future.set_exception(RecognizerUnavailable(f"{self.name} has exited"))
            self._end()
            if self._process.returncode != 0:
                logger.warning("%s exited with %s", self.name, self._process.returncode)


class RecognizerProcesses:
    """Up to `size` recognizer processes, started on first use (or by `preload`)."""

    def __init__(self, size: int = DEFAULT_PROCESSES) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._processes: list[RecognizerProcess] = []
        self._names = itertools.count(1)
        self._closed = False

    def recognizer(self) -> RemoteRecognizer:
        """A recognizer with its stream opened."""
        recognizer = RemoteRecognizer(self)
        recognizer.open()
        return recognizer

    def pids(self) -> list[int]:
        with self._lock:
            return [process.pid for process in self._processes if process.alive]

    def preload(self) -> None:
        """Start every process and load Whisper in each (in parallel)."""
        with self._lock:
            while len(self._processes) < self._size:
                self._processes.append(self._spawn())
            processes = list(self._processes)
        futures = [process.send(OP_LOAD) for process in processes]
        for future in futures:
            future.result(LOAD_TIMEOUT_S)

    def open(self) -> tuple[RecognizerProcess, int]:
        """A stream on the least busy live process."""
        with self._lock:
            if self._closed:
                raise RecognizerUnavailable("the recognizer processes are shut down")
            self._processes = [process for process in self._processes if process.alive]
            idle = [process for process in self._processes if process.open_streams == 0]
            if not idle and len(self._processes) < self._size:
                self._processes.append(self._spawn())
            process = min(self._processes, key=lambda p: p.open_streams)
            return process, process.open_stream()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            processes, self._processes = self._processes, []
        for process in processes:
            process.close()

    def _spawn(self) -> RecognizerProcess:
        process = RecognizerProcess(f"asr-{os.getpid()}-{next(self._names)}")
        logger.info("started recognizer process %s", process.name)
        return process


class RemoteRecognizer:
    """`SpeechRecognizer`'s interface, decoding in a recognizer process; one caller thread.

    If the process dies, the utterance in progress fails (RecognizerUnavailable) and the next
    one starts on a live process.
    """

    def __init__(self, processes: RecognizerProcesses) -> None:
        self._processes = processes
        self._process: RecognizerProcess | None = None
        self._stream = 0
        self._utterance: RecognizerProcess | None = None  # where the open utterance runs

    def open(self) -> RecognizerProcess:
        """Opens the stream on a live process, unless it has one."""
        process = self._process
        if process is None or not process.alive:
            if process is not None:
                process.close_stream(self._stream)
            process, self._stream = self._processes.open()
            self._process = process
        return process

    def start(self, language: str | None = None) -> None:
        self._utterance = None
        for attempt in range(2):
            process = self.open()
            try:
                process.send(OP_START, self._stream, (language or "").encode())
            except RecognizerUnavailable:
                if attempt:
                    raise
                continue  # it died just now: once more, on a new process
            self._utterance = process
            return

    def feed(self, pcm24k: bytes) -> None:
        if self._utterance is None:
            raise RuntimeError("no utterance: call start() first")
        if pcm24k:
            self._utterance.send(OP_FEED, self._stream, pcm24k)

    def partial(self) -> str:
        if self._utterance is None:
            return ""
        return self._utterance.ask(OP_PARTIAL, self._stream)

    def request_partial(self, urgent: bool = False) -> Future[str]:
        if self._utterance is None:
            done: Future[str] = Future()
            done.set_result("")
            return done
        return self._utterance.send(OP_PAUSE if urgent else OP_PARTIAL, self._stream)

    def finish(self) -> str:
        process, self._utterance = self._utterance, None
        if process is None:
            return ""
        return process.ask(OP_FINISH, self._stream)

    def cancel(self) -> None:
        process, self._utterance = self._utterance, None
        if process is not None and process.alive:
            process.send(OP_CANCEL, self._stream)

    def close(self) -> None:
        self._utterance = None
        process, self._process = self._process, None
        if process is not None:
            process.close_stream(self._stream)


@process_wide
def shared_recognizer_processes() -> RecognizerProcesses:
    """The process-wide pool, shut down when the interpreter exits."""
    processes = RecognizerProcesses()
    atexit.register(processes.close)
    return processes
