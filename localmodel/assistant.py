"""The `assistant` model: hears the user while they speak, answers by rules, speaks with piper.

Per turn: the server's VAD (Silero) cuts the utterance and streams it to `UtteranceListener`,
which recognises it in a recognizer process as it is spoken; at the end of the turn only the
last words and the tone of voice are left to compute. `ReplyEngine` answers in the persona of
the session instructions, and `Speaker` streams the answer sentence by sentence. When the VAD
has counted a short pause, the likely first sentence is synthesized ahead ("rehearsed"), so
the reply can start as soon as the turn ends.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from protocol.prosody import analyze_utterance

from .listener import Recognizer, Understanding, UtteranceListener
from .models import (
    AudioChunk,
    InputEvent,
    InputTone,
    InputTranscriptDone,
    InputTranscriptFailed,
    ModelRequest,
    ResponsePart,
    TranscriptDelta,
)
from .persona import Persona
from .recognizers import shared_recognizer_processes
from .replies import Reply, ReplyEngine
from .silero import shared_silero_pool
from .speaker import Speaker, first_sentence
from .tts import EspeakSynthesizer, select_synthesizer
from .worker import iterate_in_thread

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]

_WARM_UP_TEXT = "Hello."


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
        self._voice = "local"
        self._new_recognizer = recognizer or shared_recognizer_processes().recognizer
        self._speaker = Speaker()
        self._events: asyncio.Queue[InputEvent] = asyncio.Queue()
        self._listener: UtteranceListener | None = None

    # -- TurnListener ----------------------------------------------------------------------

    def configure(self, instructions: str, voice: str) -> None:
        self._engine.persona = self._persona(instructions)
        self._voice = voice
        self._ears()  # at session start: its recognizer gets ready before the user speaks

    def speech_started(self, item_id: str) -> None:
        self._ears().speech_started(item_id)

    def hear(self, pcm: bytes, silence_ms: int) -> None:
        self._ears().hear(pcm, silence_ms)

    def speech_stopped(self, item_id: str, audio: bytes) -> None:
        self._ears().speech_stopped(item_id, audio)

    def speech_discarded(self) -> None:
        self._ears().speech_discarded()

    async def input_events(self) -> AsyncIterator[InputEvent]:
        while True:
            yield await self._events.get()

    # -- LocalModel ------------------------------------------------------------------------

    async def respond(self, request: ModelRequest) -> AsyncIterator[ResponsePart]:
        self._engine.persona = self._persona(request.instructions)
        reply = await self._reply(request)
        logger.debug("assistant: rule=%s tone=%s", reply.rule, reply.tone)
        if "audio" not in request.modalities:
            yield TranscriptDelta(reply.text)
            return
        voice = request.voice
        stream = iterate_in_thread(
            lambda stop: self._speaker.speak(reply.text, voice, stop),
            max_queued=8,
            name="localmodel-speaker",
        )
        try:
            async for text, pcm in stream:
                if text:
                    yield TranscriptDelta(text)
                if pcm:
                    yield AudioChunk(pcm)
        finally:
            await stream.aclose()

    async def aclose(self) -> None:
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
        # Without the tone of voice (known only at the end): a reaction to it is a miss.
        if words:
            preview = self._engine.preview(words)
            self._speaker.rehearse(first_sentence(preview.text), self._voice)

    async def _reply(self, request: ModelRequest) -> Reply:
        turn = request.turn
        if turn is None:
            return self._engine.greeting()
        listener = self._ears()
        if listener.knows(turn.item_id):
            heard = await listener.understanding(turn.item_id)
        elif turn.text:
            return self._engine.reply(turn.text)
        elif turn.audio:
            heard = await self._understand_item(turn.item_id, turn.audio)
        else:
            heard = Understanding("", None)
        return self._engine.reply(heard.transcript, heard.tone)

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
    """Loads everything the assistant uses, once per process (blocking; about 2 s)."""
    global _preloaded
    with _preload_lock:
        if _preloaded:
            return
        with ThreadPoolExecutor(3, thread_name_prefix="localmodel-preload") as pool:
            jobs = [
                pool.submit(shared_recognizer_processes().preload),
                pool.submit(_warm_up_synthesis),
                pool.submit(_warm_up_silero),
            ]
            for job in jobs:
                job.result()
        _preloaded = True


def _warm_up_synthesis() -> None:
    # The first inference of an ONNX session is several times slower than the next ones.
    for synthesizer in (select_synthesizer("en"), EspeakSynthesizer("zh")):
        for _ in synthesizer.synthesize(_WARM_UP_TEXT):
            pass


def _warm_up_silero() -> None:
    pool = shared_silero_pool()
    if pool.idle_count() == 0:
        pool.release(pool.acquire())
