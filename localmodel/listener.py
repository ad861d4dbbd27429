"""One session's ears: recognition of its utterances while they are spoken, and their tone.

The hooks run on the event loop and only queue commands; one thread per session carries them
out in order (recognition itself runs in a recognizer process, see recognizers.py). Whisper
recognises the utterance so far in one pass, so passes are asked for, one at a time: every
`PARTIAL_EVERY_MS` of speech (less often when passes are slow), whose stable words go out as
transcript deltas; and at the first pause (`PAUSE_MS` of silence, inside the VAD's hangover),
whose text `on_pause` gets so the model can start on its answer, and which is kept as the
final transcript if the turn ends there without more speech: then the end of the turn costs no
pass at all. Silence beyond `MAX_SILENCE_MS` is not recognised.
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
    RecognitionTiming,
)
from .persona import CJK

logger = logging.getLogger(__name__)

# Trailing silence after which the words so far are worth answering: the pause pass (and the
# model's first clause) start here, inside the VAD's 400 ms hangover. 120 ms (the 4th Silero window)
# rather than 200: the reply is ready ~70-100 ms sooner; a pause the speaker talks through costs
# one wasted pass. The recognizer gets no more trailing silence than that, so the pause pass
# has heard all of a turn that ends there and is kept as its final transcript.
PAUSE_MS = 120
MAX_SILENCE_MS = PAUSE_MS
PARTIAL_EVERY_MS = 1200  # speech between two partial passes while the user speaks
PARTIAL_COST_SHARE = 4  # ...and at least this many times the last pass took: CPU stays bounded
MAX_RESULTS = 16  # utterances whose results are kept for responses that ask later


class Recognizer(Protocol):
    """SpeechRecognizer's interface (in-process or RemoteRecognizer)."""

    def start(self, language: str | None = None) -> None:
        """A new utterance, in `language` ("en", "zh"), or None to detect which."""
        ...

    def feed(self, pcm24k: bytes) -> None: ...

    def partial(self) -> str: ...

    def request_partial(self, urgent: bool = False) -> Future[str]:
        """partial() without waiting for it; `urgent`: before other streams' passes."""
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
    text: str = ""  # a reply's text; the language of a start
    queued_at: float = dataclasses.field(default_factory=time.monotonic)
    speech_end_at: float = 0.0  # stop: when the last voiced audio was heard (monotonic)
    asked_at: float = 0.0  # replies: when the pass was asked for
    fed: int = 0  # replies: bytes of the utterance fed when the pass was asked for
    error: str = ""  # replies: the pass failed


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
        self._speech_end_at: float | None = None  # when the trailing silence began
        self._language: str | None = None
        self._closed = False
        # The thread gets its recognizer ready before the user first speaks.
        self._thread = threading.Thread(target=self._work, name="localmodel-listener")
        self._thread.daemon = True
        self._thread.start()

    def set_language(self, language: str | None) -> None:
        """Recognise the next utterances in `language` ("en", "zh"); None: detect en or zh."""
        self._language = language

    def speech_started(self, item_id: str) -> None:
        if self._item_id is not None:
            self.speech_discarded()
        self._item_id = item_id
        self._paused = False
        self._speech_end_at = None
        self._remember(item_id, _Result(self._loop.create_future()))
        self._send(_Command("start", item_id, text=self._language or ""))

    def hear(self, pcm: bytes, silence_ms: int) -> None:
        if self._item_id is None:
            return
        if pcm and silence_ms - len(pcm) // BYTES_PER_MS < MAX_SILENCE_MS:
            self._send(_Command("audio", self._item_id, pcm))
        if silence_ms <= 0:
            self._speech_end_at = None
        elif self._speech_end_at is None:
            self._speech_end_at = time.monotonic() - silence_ms / 1000
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
        speech_end_at = self._speech_end_at or time.monotonic()
        self._send(_Command("stop", item_id, speech_end_at=speech_end_at))

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

    def _resolve(
        self,
        item_id: str,
        transcript: str | None,
        error: str | None,
        timing: RecognitionTiming | None = None,
    ) -> None:
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
        self._on_event(InputTranscriptDone(item_id, transcript, timing))

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
                    utterance.failed = utterance.failed or str(exc) or type(exc).__name__
        finally:
            if recognizer is not None:
                try:
                    recognizer.close()
                except Exception:
                    logger.exception("listener: closing the recognizer failed")

    def _carry_out(self, recognizer: Recognizer, command: _Command, utterance: _Utterance) -> None:
        kind = command.kind
        if kind == "start":
            if utterance.stopping is not None:  # the last turn still waits for its pause pass
                self._finish(recognizer, utterance.stopping, utterance)
            utterance.reset(command.item_id)
            recognizer.start(command.text or None)
        elif kind == "audio":
            if utterance.failed:
                return
            recognizer.feed(command.pcm)
            utterance.fed += len(command.pcm)
            utterance.unread_bytes += len(command.pcm)
            # One pass at a time, and never waited for: the answer comes back as a command
            # (under load the recognizer is behind, and the audio would queue up here).
            if utterance.unread_bytes >= utterance.partial_every() and not utterance.asking:
                utterance.unread_bytes = 0
                utterance.asking = True
                self._ask(recognizer, "hypothesis", utterance)
        elif kind == "hypothesis":
            if command.item_id == utterance.item_id:
                utterance.asking = False
                utterance.last_pass_s = time.monotonic() - command.asked_at
                delta = utterance.stable_increment(command.text) if command.text else ""
                if delta:
                    self._post(self._emit, InputTranscriptDelta(command.item_id, delta))
        elif kind == "pause":
            if not utterance.failed and utterance.stopping is None:
                utterance.pause = None
                utterance.pause_asked = (utterance.fed, time.monotonic())
                self._ask(recognizer, "paused", utterance, urgent=True)
        elif kind == "paused":
            if command.item_id != utterance.item_id or command.fed != utterance.fed:
                return  # a later utterance, or speech went on after the pause: stale
            if command.error:
                utterance.failed = command.error
                if utterance.stopping is not None:
                    self._post(self._resolve, command.item_id, None, command.error)
                    utterance.reset("")
                return
            utterance.pause = (command.text, command.asked_at, time.monotonic())
            if utterance.stopping is not None:
                self._finish(recognizer, utterance.stopping, utterance)
            else:
                self._post(self._pause, command.item_id, command.text)
        elif kind == "stop":
            if utterance.failed:
                raise RuntimeError(
                    f"recognition failed earlier in the utterance: {utterance.failed}"
                )
            if utterance.pause_asked is not None and utterance.pause_asked[0] == utterance.fed:
                utterance.stopping = command  # nothing new since the pause: keep its pass
                if utterance.pause is not None:
                    self._finish(recognizer, command, utterance)
            else:
                self._finish(recognizer, command, utterance)
        elif kind == "discard":
            utterance.reset("")
            recognizer.cancel()

    def _finish(self, recognizer: Recognizer, stop: _Command, utterance: _Utterance) -> None:
        """Resolves the stopped utterance: with the pause pass if it covered all of it (and has
        answered), else with a pass now."""
        kept = utterance.pause if utterance.stopping is stop else None
        utterance.reset("")
        try:
            if kept is not None:
                transcript, started, ended = kept
                recognizer.cancel()
            else:
                started = time.monotonic()
                transcript = recognizer.finish()
                ended = time.monotonic()
        except Exception as exc:
            logger.warning("listener: recognition failed: %s", exc)
            self._post(self._resolve, stop.item_id, None, str(exc))
            return
        timing = RecognitionTiming(
            stopped_ms=round((stop.queued_at - stop.speech_end_at) * 1000, 1),
            started_ms=round((started - stop.speech_end_at) * 1000, 1),
            ended_ms=round((ended - stop.speech_end_at) * 1000, 1),
            reused_pause_pass=kept is not None,
        )
        logger.debug("listener: final transcript %s", timing)
        self._post(self._resolve, stop.item_id, transcript, None, timing)

    def _ask(
        self, recognizer: Recognizer, reply: str, utterance: _Utterance, urgent: bool = False
    ) -> None:
        item_id, fed, asked_at = utterance.item_id, utterance.fed, time.monotonic()

        def answered(future: Future[str]) -> None:
            failure = "cancelled" if future.cancelled() else future.exception()
            text = "" if failure else future.result()
            error = str(failure or "")
            self._commands.put(
                _Command(reply, item_id, text=text, asked_at=asked_at, fed=fed, error=error)
            )

        recognizer.request_partial(urgent).add_done_callback(answered)


class _Utterance:
    """Worker-side state of the utterance being recognised."""

    def __init__(self) -> None:
        self.reset("")

    def reset(self, item_id: str) -> None:
        self.item_id = item_id
        self.fed = 0  # bytes fed to the recognizer
        self.unread_bytes = 0  # ...since the last partial pass was asked for
        self.asking = False
        self.last_pass_s = 0.0
        self.failed = ""  # why recognition of this utterance failed
        self.pause_asked: tuple[int, float] | None = None  # (bytes fed, when) of the pause pass
        self.pause: tuple[str, float, float] | None = None  # its (text, asked at, answered at)
        self.stopping: _Command | None = None  # the stop that waits for the pause pass
        self._sent = ""

    def partial_every(self) -> int:
        """Bytes of speech between partial passes."""
        wait_ms = max(PARTIAL_EVERY_MS, PARTIAL_COST_SHARE * self.last_pass_s * 1000)
        return int(wait_ms) * BYTES_PER_MS

    def stable_increment(self, hypothesis: str) -> str:
        """New text of the latest pass, but its last word, as an increment of what was sent.

        A pass over the utterance so far may end in a word cut short, and Whisper may revise
        it; deltas cannot be taken back, so the last word (or Chinese character) waits for
        the next pass, and nothing is sent once a pass disagrees with what was.
        """
        stable = _without_last_word(hypothesis)
        if len(stable) <= len(self._sent) or not stable.startswith(self._sent):
            return ""
        added, self._sent = stable[len(self._sent) :], stable
        return added


_CLOSING = ".?!,;:。？！，；：… "


def _without_last_word(text: str) -> str:
    text = text.rstrip(_CLOSING)
    if text and CJK.match(text[-1]):
        return text[:-1].rstrip(_CLOSING)
    return text.rpartition(" ")[0].rstrip(_CLOSING)
