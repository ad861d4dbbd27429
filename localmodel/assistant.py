"""The `assistant` model: hears the user while they speak, answers (rules, else a small LLM),
speaks clause by clause.

Per turn: the server's VAD (Silero) cuts the utterance and streams it to `UtteranceListener`,
which recognises it as it is spoken; at the end of the turn only the last words and the tone of
voice are left to compute. `ReplyEngine`'s rules answer what they answer exactly (time, date,
arithmetic, the greeting, stop, repeat); everything else goes to the language model (llm.py)
in the persona of the session instructions, with the recent turns and the tone of voice as
context. Its text streams through the clause splitter to the voice on two threads (the model
generates the next clause while the voice speaks one), so the first clause is heard while the
rest is generated; a cancelled response stops both between two tokens. When the VAD has
counted a short pause, a rule's first sentence is synthesized ahead ("rehearsed").
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from protocol.prosody import analyze_utterance

from .clauses import produced_in_thread, spoken_clauses
from .listener import Recognizer, Understanding, UtteranceListener
from .llm import Generation, Message, shared_language_model
from .models import (
    AudioChunk,
    HistoryEntry,
    InputEvent,
    InputTone,
    InputTranscriptDone,
    InputTranscriptFailed,
    ModelRequest,
    ResponsePart,
    TranscriptDelta,
)
from .persona import CJK, Persona, persona_prompt
from .recognizers import shared_recognizer_processes
from .replies import Reply, ReplyEngine
from .silero import shared_silero_pool
from .speaker import Speaker, reply_language
from .tts import select_synthesizer
from .worker import iterate_in_thread

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]

_WARM_UP_TEXT = "Hello."
# Earlier items the language model sees: up to MAX_HISTORY, dropped HISTORY_STEP at a time
# (a window sliding by one item would change the prompt's start, and so miss the KV cache,
# at every turn).
MAX_HISTORY = 12
HISTORY_STEP = 8
MAX_ITEM_CHARS = 600  # of each of them, and of the user's turn
# At the listener's pause (PAUSE_MS of silence), start the model's first clause for the words
# so far and rehearse its audio; the reply uses it if the turn ends with the same words. It
# pays only when the pause's recognition pass is back before the turn ends (400 ms): in the
# 2026-12 benchmark on a loaded machine it came 30-60 ms late in 15 of 16 turns (one hit); a
# late pass starts nothing, so it costs nothing then.
SPECULATE = True


@dataclasses.dataclass
class TurnTiming:
    """Where one response's time went, in seconds from the start of respond() (benchmarks
    read it from the debug log record's `turn_timing`)."""

    rule: str
    started: float  # perf_counter at the start
    rules_s: float  # the transcript known (recognition's tail) and the rules asked
    first_clause_s: float | None = None  # the reply's first clause ready to be spoken
    first_audio_s: float | None = None
    total_s: float | None = None
    generation: Generation | None = None  # the model's cost (rule "llm")
    speculated: bool = False  # the first clause came from the pause (a speculation hit)

    def generated(self, generation: Generation) -> None:
        self.generation = generation


class _Speculation:
    """The model's first clause for the words heard at a pause, generated ahead."""

    def __init__(self, key: tuple[tuple[Message, ...], tuple[Message, ...]]) -> None:
        self.key = key
        self.stop = threading.Event()
        self.clause: concurrent.futures.Future[str] = concurrent.futures.Future()

    def first_clause(self, stop: threading.Event) -> str:
        """The clause (blocking until it is there; "" if none or `stop` is set first)."""
        while not stop.is_set():
            try:
                return self.clause.result(timeout=0.05)
            except concurrent.futures.TimeoutError:
                continue
        self.stop.set()
        return ""


class AssistantModel:
    """One session of the offline assistant (a `LocalModel` and a `TurnListener`)."""

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        recognizer: Callable[[], Recognizer] | None = None,
    ) -> None:
        self._engine = ReplyEngine(clock=clock)
        self._personas: dict[str, Persona] = {}
        self._prompts: dict[tuple[str, str], tuple[Message, ...]] = {}
        self._closed = threading.Event()  # stops the session's persona preparation
        self._instructions = ""
        self._next_history: tuple[HistoryEntry, ...] = ()
        self._speculation: _Speculation | None = None
        self._ended = ""  # the last user item whose turn ended
        self._voice = "local"
        self._new_recognizer = recognizer or shared_recognizer_processes().recognizer
        self._speaker = Speaker()
        self._events: asyncio.Queue[InputEvent] = asyncio.Queue()
        self._listener: UtteranceListener | None = None

    # -- TurnListener ----------------------------------------------------------------------

    def configure(self, instructions: str, voice: str) -> None:
        persona = self._engine.persona = self._persona(instructions)
        self._voice = voice
        self._instructions = instructions
        self._ears()  # at session start: its recognizer gets ready before the user speaks
        # The persona's prompt into the model's cache before the first turn needs it.
        prompt = self._persona_prompt(instructions, persona.language)
        threading.Thread(
            target=_prepare,
            args=(prompt, self._closed),
            name="localmodel-llm-prepare",
            daemon=True,
        ).start()

    def speech_started(self, item_id: str) -> None:
        self._ears().speech_started(item_id)

    def hear(self, pcm: bytes, silence_ms: int) -> None:
        self._ears().hear(pcm, silence_ms)

    def speech_stopped(self, item_id: str, audio: bytes) -> None:
        self._ended = item_id
        self._ears().speech_stopped(item_id, audio)

    def speech_discarded(self) -> None:
        self._ears().speech_discarded()

    async def input_events(self) -> AsyncIterator[InputEvent]:
        while True:
            yield await self._events.get()

    # -- LocalModel ------------------------------------------------------------------------

    async def respond(self, request: ModelRequest) -> AsyncIterator[ResponsePart]:
        started = time.perf_counter()
        self._engine.persona = self._persona(request.instructions)
        transcript, reply = await self._reply(request)
        logger.debug("assistant: rule=%s tone=%s", reply.rule, reply.tone)
        timing = TurnTiming(reply.rule, started, time.perf_counter() - started)
        audio = "audio" in request.modalities
        if reply.rule == "llm":
            produce = self._generated(request, transcript, reply.tone, audio, timing)
        elif audio:
            text, voice = reply.text, request.voice
            produce = lambda stop: self._speaker.speak(text, voice, stop)  # noqa: E731
        else:
            text = reply.text
            produce = lambda stop: iter([(text, b"")])  # noqa: E731
        stream = iterate_in_thread(produce, max_queued=8, name="localmodel-speaker")
        said: list[str] = []
        try:
            async for text, pcm in stream:
                if text:
                    piece = _joined(text, said)
                    said.append(piece)
                    yield TranscriptDelta(piece)
                if pcm:
                    if timing.first_audio_s is None:
                        timing.first_audio_s = time.perf_counter() - started
                    yield AudioChunk(pcm)
        finally:
            await stream.aclose()
            if reply.rule == "llm":
                self._engine.remember(Reply("".join(said), reply.rule, reply.tone))
            # What the next request's history will be (a speculative reply needs it).
            user = (HistoryEntry("user", transcript),) if transcript else ()
            reply_entry = (HistoryEntry("assistant", "".join(said)),) if said else ()
            self._next_history = (*request.history, *user, *reply_entry)
            timing.total_s = time.perf_counter() - started
            logger.debug("assistant: turn %s", timing, extra={"turn_timing": timing})

    async def aclose(self) -> None:
        self._closed.set()
        self._drop_speculation()
        if self._listener is not None:
            await self._listener.aclose()
        self._speaker.close()

    # -- internals -------------------------------------------------------------------------

    def _ears(self) -> UtteranceListener:
        if self._listener is None:
            self._listener = UtteranceListener(
                self._new_recognizer, self._events.put_nowait, self._rehearse
            )
        return self._listener

    def _persona(self, instructions: str) -> Persona:
        persona = self._personas.get(instructions)
        if persona is None:
            if len(self._personas) > 8:
                self._personas.clear()
            persona = self._personas[instructions] = Persona.from_instructions(instructions)
        return persona

    def _rehearse(self, item_id: str, words: str) -> None:
        # Without the tone of voice (known only at the end): a reaction to it is a miss. When
        # the pause's words come after the turn has ended (recognition took longer than the
        # rest of the hangover), the reply is already under way: nothing to start ahead.
        if words and item_id != self._ended:
            preview = self._engine.preview(words)
            if preview.rule != "llm":
                self._speaker.rehearse(preview.text, self._voice)
            elif SPECULATE:
                self._speculate(words)

    async def _reply(self, request: ModelRequest) -> tuple[str, Reply]:
        """What the user said, and the rules' answer to it (rule "llm": the model answers)."""
        turn = request.turn
        if turn is None:
            return "", self._engine.greeting()
        listener = self._ears()
        if listener.knows(turn.item_id):
            heard = await listener.understanding(turn.item_id)
        elif turn.text:
            return turn.text, self._engine.reply(turn.text)
        elif turn.audio:
            heard = await self._understand_item(turn.item_id, turn.audio)
        else:
            heard = Understanding("", None)
        return heard.transcript, self._engine.reply(heard.transcript, heard.tone)

    def _generated(
        self,
        request: ModelRequest,
        transcript: str,
        reaction: str | None,
        audio: bool,
        timing: TurnTiming,
    ) -> Callable[[threading.Event], Iterator[tuple[str, bytes]]]:
        """The language model's answer as (clause, audio) pieces, for a worker thread."""
        persona, messages, opening = self._prompt(
            request.instructions, request.history, transcript, reaction
        )
        speculation = self._take_speculation((persona, messages))
        timing.speculated = speculation is not None
        voice = request.voice

        def clauses(stop: threading.Event) -> Iterator[str]:
            nonlocal opening
            if speculation is not None:
                opening = speculation.first_clause(stop)
            if opening:
                # The rules' reaction to the voice, or the clause generated at the pause:
                # spoken while the model goes on from it.
                timing.first_clause_s = time.perf_counter() - timing.started
                yield opening
            model = shared_language_model()
            pieces = model.generate(
                persona, messages, stop, opening=opening, report=timing.generated
            )
            for clause in spoken_clauses(pieces):
                if timing.first_clause_s is None:
                    timing.first_clause_s = time.perf_counter() - timing.started
                yield clause

        def produce(stop: threading.Event) -> Iterator[tuple[str, bytes]]:
            if not audio:
                for clause in clauses(stop):
                    yield clause, b""
                return
            # On a thread of its own: the model writes the next clause while one is spoken.
            ahead = produced_in_thread(lambda: clauses(stop), stop, name="localmodel-llm")
            yield from self._speaker.speak_clauses(ahead, voice, stop)

        return produce

    def _prompt(
        self,
        instructions: str,
        history: tuple[HistoryEntry, ...],
        transcript: str,
        reaction: str | None,
    ) -> tuple[tuple[Message, ...], tuple[Message, ...], str]:
        """The model's persona prompt, the messages it answers and the start of its reply."""
        chinese = self._engine.persona.language == "zh" or bool(CJK.search(transcript))
        language = "zh" if chinese else "en"
        persona = self._persona_prompt(instructions, language)
        note = self._engine.tone_note(reaction, language)
        opening = (
            self._engine.opening(reaction) if language == self._engine.persona.language else ""
        )
        user = f"{note} {transcript}" if note else transcript
        earlier = [
            Message(entry.role, entry.text[:MAX_ITEM_CHARS])
            for entry in history
            if entry.role in ("user", "assistant") and entry.text.strip()
        ]
        earlier = earlier[_history_start(len(earlier)) :]
        return persona, (*earlier, Message("user", user[:MAX_ITEM_CHARS])), opening

    def _speculate(self, words: str) -> None:
        """At a pause: the model's first clause for these words, before the turn ends (kept if
        the turn ends with the same words and an unremarkable tone), and its audio rehearsed."""
        persona, messages, _ = self._prompt(self._instructions, self._next_history, words, None)
        key = (persona, messages)
        current = self._speculation
        if current is not None and current.key == key:
            return
        self._drop_speculation()
        speculation = self._speculation = _Speculation(key)
        voice = self._voice

        def run() -> None:
            try:
                pieces = shared_language_model().generate(persona, messages, speculation.stop)
                clauses = spoken_clauses(pieces)
                first = next(clauses, "")
                clauses.close()  # the model stops after the first clause
                if first and not speculation.stop.is_set():
                    self._speaker.rehearse(first, voice)
                speculation.clause.set_result(first)
            except Exception as exc:
                logger.warning("assistant: speculative reply failed: %s", exc)
                speculation.clause.set_result("")

        threading.Thread(target=run, name="localmodel-llm-speculation", daemon=True).start()

    def _take_speculation(
        self, key: tuple[tuple[Message, ...], tuple[Message, ...]]
    ) -> _Speculation | None:
        speculation, self._speculation = self._speculation, None
        if speculation is not None and speculation.key != key:
            speculation.stop.set()
            logger.debug(
                "assistant: speculation missed: %r, not %r",
                key[1][-3:],
                speculation.key[1][-3:],
            )
            return None
        return speculation

    def _drop_speculation(self) -> None:
        speculation, self._speculation = self._speculation, None
        if speculation is not None:
            speculation.stop.set()

    def _persona_prompt(self, instructions: str, language: str) -> tuple[Message, ...]:
        key = (instructions, language)
        prompt = self._prompts.get(key)
        if prompt is None:
            if len(self._prompts) > 8:
                self._prompts.clear()
            prompt = self._prompts[key] = persona_prompt(instructions, language)
        return prompt

    async def _understand_item(self, item_id: str, audio: bytes) -> Understanding:
        """Recognises a user audio item the listener did not hear (conversation.item.create)."""

        def recognize() -> str:
            recognizer = self._new_recognizer()
            try:
                recognizer.start()
                recognizer.feed(audio)
                return recognizer.finish()
            finally:
                recognizer.close()

        tone = await asyncio.to_thread(analyze_utterance, audio)
        self._events.put_nowait(InputTone(item_id, tone))
        try:
            transcript = await asyncio.to_thread(recognize)
        except Exception as exc:
            logger.warning("assistant: recognising item %s failed: %s", item_id, exc)
            self._events.put_nowait(InputTranscriptFailed(item_id, str(exc)))
            return Understanding("", tone)
        self._events.put_nowait(InputTranscriptDone(item_id, transcript))
        return Understanding(transcript, tone)


_preload_lock = threading.Lock()
_preloaded = False


def preload_assistant() -> None:
    """Loads everything the assistant uses, once per process (blocking; a few seconds, the
    first start joins the language model from its wheels too)."""
    global _preloaded
    with _preload_lock:
        if _preloaded:
            return
        with ThreadPoolExecutor(4, thread_name_prefix="localmodel-preload") as pool:
            jobs = [
                pool.submit(shared_recognizer_processes().preload),
                pool.submit(_warm_up_synthesis),
                pool.submit(_warm_up_silero),
                pool.submit(_warm_up_language_model),
            ]
            for job in jobs:
                job.result()
        _preloaded = True


def _warm_up_synthesis() -> None:
    # The first inference of an ONNX session is several times slower than the next ones.
    for synthesizer in (select_synthesizer("en"), select_synthesizer("zh")):  # piper, Kokoro
        for _ in synthesizer.synthesize(_WARM_UP_TEXT):
            pass


def _warm_up_language_model() -> None:
    # Loads it, and evaluates the prompts of the default persona (no instructions), in English
    # and for a user who speaks Mandarin to it.
    _prepare(persona_prompt(""))
    _prepare(persona_prompt("", "zh"))


def _prepare(persona: tuple[Message, ...], stop: threading.Event | None = None) -> None:
    try:
        shared_language_model().prepare(persona, stop)
    except Exception:
        logger.exception("assistant: the language model failed to load")


def _history_start(count: int) -> int:
    """How many of `count` earlier items to leave out (whole steps, to keep the cache)."""
    if count <= MAX_HISTORY:
        return 0
    return -(-(count - MAX_HISTORY) // HISTORY_STEP) * HISTORY_STEP


def _joined(text: str, said: list[str]) -> str:
    """A clause's transcript piece: after an earlier English one, with a space between."""
    text = text.strip() if said else text.lstrip()
    if said and reply_language(text) == "en" and not said[-1].endswith(" "):
        return " " + text
    return text


def _warm_up_silero() -> None:
    pool = shared_silero_pool()
    if pool.idle_count() == 0:
        pool.release(pool.acquire())
