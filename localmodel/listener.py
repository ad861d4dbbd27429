"""One session's ears: streaming recognition of its utterances and their tone of voice.

The hooks run on the event loop and only queue commands; one thread per session carries them
out in order (recognition itself runs in a recognizer process, see recognizers.py). While the
user speaks, stable words of the partial hypothesis go out as transcript deltas; when the VAD
has counted `PAUSE_MS` of silence, `on_pause` gets the words so far, so the model can start on
its answer before the end of the turn is certain. Silence beyond `MAX_SILENCE_MS` is not
decoded: a turn's final hangover would cost recognition time and delay its transcript.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from typing import Protocol

from protocol.audio import BYTES_PER_MS
from protocol.prosody import ToneFeatures, analyze_utterance

from .models import (
    InputEvent,
    InputTone,
    InputTranscriptDelta,
    InputTranscriptDone,
    InputTranscriptFailed,
)

logger = logging.getLogger(__name__)

PAUSE_MS = 200  # trailing silence after which the words so far are worth answering
MAX_SILENCE_MS = 160  # trailing silence the recognizer gets (it ends words with less)
PARTIAL_EVERY_MS = 240  # how often the partial hypothesis is read while the user speaks
MAX_RESULTS = 16  # utterances whose results are kept for responses that ask later


class Recognizer(Protocol):
    """SpeechRecognizer's interface (in-process or RemoteRecognizer)."""

    def start(self) -> None: ...

    def feed(self, pcm24k: bytes) -> None: ...

    def partial(self) -> str: ...

    def request_partial(self) -> Future[str]:
        """partial() without waiting for it."""
        ...

    def finish(self) -> str: ...

    def cancel(self) -> None: ...

    def close(self) -> None: ...


@dataclasses.dataclass(frozen=True)
class Understanding:
    """What was heard in one user item; `transcript` is empty when recognition failed."""

    transcript: str
    tone: ToneFeatures | None


@dataclasses.dataclass
class _Result:
    transcript: asyncio.Future[str]
    tone: asyncio.Future[ToneFeatures] | None = None


@dataclasses.dataclass(frozen=True)
class _Command:
    kind: str  # start, audio, pause, stop, discard; and the replies hypothesis and paused
    item_id: str = ""
    pcm: bytes = b""
    text: str = ""
    queued_at: float = dataclasses.field(default_factory=time.monotonic)


_STOP = _Command("exit")


class UtteranceListener:
    """Recognises one session's utterances on its own thread; create and call on the loop."""

    def __init__(
        self,
        recognizer: Callable[[], Recognizer],
        on_event: Callable[[InputEvent], None],
        on_pause: Callable[[str, str], None],
    ) -> None:
        self._new_recognizer = recognizer
        self._on_event = on_event
        self._on_pause = on_pause
        self._loop = asyncio.get_running_loop()
        self._commands: queue.SimpleQueue[_Command] = queue.SimpleQueue()
        self._results: OrderedDict[str, _Result] = OrderedDict()
        self._item_id: str | None = None
        self._paused = False
        self._closed = False
        # The thread gets its recognizer ready before the user first speaks.
        self._thread = threading.Thread(target=self._work, name="localmodel-listener")
        self._thread.daemon = True
        self._thread.start()

    def speech_started(self, item_id: str) -> None:
        if self._item_id is not None:
            self.speech_discarded()
        self._item_id = item_id
        self._paused = False
        self._remember(item_id, _Result(self._loop.create_future()))
        self._send(_Command("start", item_id))

    def hear(self, pcm: bytes, silence_ms: int) -> None:
        if self._item_id is None:
            return
        if pcm and silence_ms - len(pcm) // BYTES_PER_MS < MAX_SILENCE_MS:
            self._send(_Command("audio", self._item_id, pcm))
        if silence_ms < PAUSE_MS:
            self._paused = False
        elif not self._paused:
            self._paused = True
            self._send(_Command("pause", self._item_id))

    def speech_stopped(self, item_id: str, audio: bytes) -> None:
        """The utterance `item_id` is committed; `audio` is all of it.

        Call hear() with the last of it first (or not at all: a commit of audio this listener
        has not heard, e.g. with turn detection off, is heard here in one piece).
        """
        if self._item_id != item_id:
            self.speech_started(item_id)
            self.hear(audio, 0)
        self._item_id = None
        result = self._results[item_id]
        result.tone = self._loop.run_in_executor(None, analyze_utterance, audio)
        result.tone.add_done_callback(lambda tone: self._send_tone(item_id, tone))
        self._send(_Command("stop", item_id))

    def speech_discarded(self) -> None:
        if self._item_id is None:
            return
        result = self._results.pop(self._item_id, None)
        if result is not None:
            result.transcript.cancel()
        self._item_id = None
        self._send(_Command("discard"))

    def knows(self, item_id: str) -> bool:
        return item_id in self._results

    async def understanding(self, item_id: str) -> Understanding:
        """The transcript and tone of a committed item this listener heard."""
        result = self._results[item_id]
        try:
            transcript = await asyncio.shield(result.transcript)
        except Exception:
            transcript = ""
        tone: ToneFeatures | None = None
        if result.tone is not None:
            try:
                tone = await asyncio.shield(result.tone)
            except Exception:
                logger.exception("tone analysis failed")
        return Understanding(transcript, tone)

    async def aclose(self) -> None:
        self._closed = True
        for result in self._results.values():
            result.transcript.cancel()
        self._commands.put(_STOP)
        await asyncio.to_thread(self._thread.join, 10.0)

    # -- loop side -----------------------------------------------------------------------------

    def _send(self, command: _Command) -> None:
        if not self._closed:
            self._commands.put(command)

    def _remember(self, item_id: str, result: _Result) -> None:
        self._results[item_id] = result
        while len(self._results) > MAX_RESULTS:
            _, old = self._results.popitem(last=False)
            old.transcript.cancel()

    def _send_tone(self, item_id: str, tone: asyncio.Future[ToneFeatures]) -> None:
        if not tone.cancelled() and tone.exception() is None and not self._closed:
            self._on_event(InputTone(item_id, tone.result()))

    def _post(self, callback: Callable[..., None], *args: object) -> None:
        try:
            self._loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            pass

    def _resolve(self, item_id: str, transcript: str | None, error: str | None) -> None:
        result = self._results.get(item_id)
        if self._closed:
            return
        if error is not None:
            if result is not None and not result.transcript.done():
                result.transcript.set_exception(RuntimeError(error))
            self._on_event(InputTranscriptFailed(item_id, error))
            return
        assert transcript is not None
        if result is not None and not result.transcript.done():
            result.transcript.set_result(transcript)
        self._on_event(InputTranscriptDone(item_id, transcript))

    def _emit(self, event: InputEvent) -> None:
        if not self._closed:
            self._on_event(event)

    def _pause(self, item_id: str, words: str) -> None:
        if not self._closed and self._item_id == item_id:
            self._on_pause(item_id, words)

    # -- worker thread -------------------------------------------------------------------------

    def _work(self) -> None:
        recognizer: Recognizer | None = None
        utterance = _Utterance()
        try:
            try:
                recognizer = self._new_recognizer()
            except Exception as exc:  # tried again at the first utterance
                logger.warning("listener: no recognizer yet: %s", exc)
            while True:
                command = self._commands.get()
                if command is _STOP:
                    return
                try:
                    if recognizer is None:
                        recognizer = self._new_recognizer()
                    self._carry_out(recognizer, command, utterance)
                except Exception as exc:
                    logger.warning("listener: %s failed: %s", command.kind, exc)
                    if command.kind == "stop":
                        self._post(self._resolve, command.item_id, None, str(exc))
                    utterance.failed = True
        finally:
            if recognizer is not None:
                try:
                    recognizer.close()
                except Exception:
                    logger.exception("listener: closing the recognizer failed")

    def _carry_out(self, recognizer: Recognizer, command: _Command, utterance: _Utterance) -> None:
        kind = command.kind
        if kind == "start":
            utterance.reset(command.item_id)
            recognizer.start()
        elif kind == "audio":
            if utterance.failed:
                return
            recognizer.feed(command.pcm)
            utterance.unread_bytes += len(command.pcm)
            # One question at a time; the answer comes back as a command (never wait for it:
            # under load the recognizer is behind, and the audio would queue up here).
            if utterance.unread_bytes >= PARTIAL_EVERY_MS * BYTES_PER_MS and not utterance.asking:
                utterance.unread_bytes = 0
                utterance.asking = True
                self._ask(recognizer, "hypothesis", command.item_id)
        elif kind == "hypothesis":
            if command.item_id == utterance.item_id:
                utterance.asking = False
                delta = utterance.stable_increment(command.text)
                if delta:
                    self._post(self._emit, InputTranscriptDelta(command.item_id, delta))
        elif kind == "pause":
            if not utterance.failed:
                self._ask(recognizer, "paused", command.item_id)
        elif kind == "paused":
            if command.item_id == utterance.item_id:  # too late once the turn has ended
                self._post(self._pause, command.item_id, command.text)
        elif kind == "stop":
            if utterance.failed:
                raise RuntimeError("recognition failed earlier in the utterance")
            started = time.monotonic()
            transcript = recognizer.finish()
            logger.debug(
                "listener: final transcript in %.0f ms (%.0f ms queued)",
                (time.monotonic() - started) * 1000,
                (started - command.queued_at) * 1000,
            )
            utterance.reset("")
            self._post(self._resolve, command.item_id, transcript, None)
        elif kind == "discard":
            utterance.reset("")
            recognizer.cancel()

    def _ask(self, recognizer: Recognizer, reply: str, item_id: str) -> None:
        def answered(future: Future[str]) -> None:
            text = "" if future.cancelled() or future.exception() else future.result()
            self._commands.put(_Command(reply, item_id, text=text))

        recognizer.request_partial().add_done_callback(answered)


class _Utterance:
    """Worker-side state of the utterance being recognised."""

    def __init__(self) -> None:
        self.reset("")

    def reset(self, item_id: str) -> None:
        self.item_id = item_id
        self.unread_bytes = 0
        self.asking = False
        self.failed = False
        self._previous: list[str] = []
        self._sent: list[str] = []

    def stable_increment(self, hypothesis: str) -> str:
        """New words that two hypotheses in a row agree on, as an increment of what was sent.

        pocketsphinx revises its latest words; deltas cannot be taken back, so only words
        that survived one more read are sent, and none after the first disagreement.
        """
        words = hypothesis.split()
        stable: list[str] = []
        for old, new in zip(self._previous, words, strict=False):
            if old != new:
                break
            stable.append(new)
        self._previous = words
        if len(stable) <= len(self._sent) or stable[: len(self._sent)] != self._sent:
            return ""
        added = stable[len(self._sent) :]
        prefix = " " if self._sent else ""
        self._sent = stable
        return prefix + " ".join(added)
