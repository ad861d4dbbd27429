"""The assistant's mouth: reply text to pcm16 24 kHz, sentence by sentence, with rehearsal.

`speak` runs on a worker thread (see worker.iterate_in_thread) and yields each sentence with
its audio as soon as it is synthesized. `rehearse` synthesizes a likely first sentence ahead of
time (while the VAD is still waiting for the end of the turn); `speak` uses it when the reply
starts with that very sentence.
"""

from __future__ import annotations

import concurrent.futures
import logging
import re
import threading
import time
from collections.abc import Iterator

from protocol.audio import BYTES_PER_MS

from .tts import (
    EspeakSynthesizer,
    SpeechSynthesizer,
    select_synthesizer,
    split_sentences,
)

logger = logging.getLogger(__name__)

CHUNK_MS = 200  # audio per response.audio.delta
_CHUNK_BYTES = CHUNK_MS * BYTES_PER_MS
_CJK = re.compile(r"[\u3400-\u9fff]")
_WAIT_S = 0.05
# Session voices that ask for espeak-ng's English voice instead of piper.
ESPEAK_VOICES = frozenset({"espeak", "espeak-ng"})


def reply_language(text: str) -> str:
    return "zh" if _CJK.search(text) else "en"


def first_sentence(text: str) -> str:
    sentences = split_sentences(text)
    return sentences[0] if sentences else ""


class Speaker:
    """Synthesizers by language and voice, and at most one rehearsed sentence."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._synthesizers: dict[str, SpeechSynthesizer] = {}
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._rehearsed: tuple[str, concurrent.futures.Future[bytes]] | None = None

    def synthesizer(self, text: str, voice: str) -> SpeechSynthesizer:
        language = reply_language(text)
        key = "espeak" if language == "en" and voice.lower() in ESPEAK_VOICES else language
        with self._lock:
            synthesizer = self._synthesizers.get(key)
            if synthesizer is None:
                if key == "espeak":
                    synthesizer = EspeakSynthesizer("en-us")
                else:
                    synthesizer = select_synthesizer(language)
                self._synthesizers[key] = synthesizer
            return synthesizer

    def rehearse(self, sentence: str, voice: str) -> None:
        """Start synthesizing `sentence` on a thread (replacing any earlier rehearsal)."""
        key = f"{voice}\n{sentence}"
        with self._lock:
            if not sentence or (self._rehearsed is not None and self._rehearsed[0] == key):
                return
            if self._executor is None:
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    1, thread_name_prefix="localmodel-rehearsal"
                )
            if self._rehearsed is not None:
                self._rehearsed[1].cancel()  # only if it has not started
            future = self._executor.submit(self._synthesize, sentence, voice)
            self._rehearsed = (key, future)
        logger.debug("speaker: rehearsing %r", sentence)

    def speak(self, text: str, voice: str, stop: threading.Event) -> Iterator[tuple[str, bytes]]:
        """(text, audio) pieces: each sentence's text comes with its first audio chunk."""
        joiner = "" if reply_language(text) == "zh" else " "
        for index, sentence in enumerate(split_sentences(text)):
            started = time.perf_counter()
            pcm = self._take_rehearsal(sentence, voice, stop) if index == 0 else None
            rehearsed = pcm is not None
            if pcm is None:
                pcm = self._synthesize(sentence, voice)
            logger.debug(
                "speaker: sentence %d ready in %.0f ms (%s)",
                index,
                (time.perf_counter() - started) * 1000,
                "rehearsed" if rehearsed else "synthesized",
            )
            if stop.is_set():
                return
            label = sentence if index == 0 else joiner + sentence
            for offset in range(0, max(len(pcm), 1), _CHUNK_BYTES):
                yield label, pcm[offset : offset + _CHUNK_BYTES]
                label = ""

    def close(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
            self._rehearsed = None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    def _synthesize(self, sentence: str, voice: str) -> bytes:
        return b"".join(self.synthesizer(sentence, voice).synthesize(sentence))

    def _take_rehearsal(self, sentence: str, voice: str, stop: threading.Event) -> bytes | None:
        with self._lock:
            rehearsed, self._rehearsed = self._rehearsed, None
        if rehearsed is None or rehearsed[0] != f"{voice}\n{sentence}":
            return None
        future = rehearsed[1]
        while not stop.is_set():
            try:
                return future.result(_WAIT_S)
            except concurrent.futures.TimeoutError:
                continue
            except Exception:
                logger.exception("rehearsed synthesis failed")
                return None
        return b""
