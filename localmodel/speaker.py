"""The assistant's mouth: reply text to pcm16 24 kHz, clause by clause, with rehearsal.

`speak_clauses` runs on a worker thread (see worker.iterate_in_thread) and takes the reply's
clauses as they come (from the language model while it still generates: the iterable may
block); it synthesizes each clause on its own, the first one alone, and yields it with its
audio as soon as that is ready, so the first clause is heard while the rest is still written or
synthesized. `speak(text)` is `speak_clauses` over one text. `rehearse` synthesizes a likely
first clause ahead of time (while the VAD is still waiting for the end of the turn); the reply
uses it when it starts with that very clause.

First-clause latency: the clause handed in → its audio out, warm, one ONNX thread each
(benchmarks/mandarin_voice.py --latency-only; 2 cores shared with other heavy work, load
average 4-5, CPU pressure 63-77 %, so wall times are 1-3x the CPU times):

| voice | first clause | audio | first audio, median (ms) | CPU (ms) |
|---|---|---|---|---|
| piper (joe) | "Sure." | 0.5 s | 50-93 | 50-62 |
| piper (joe) | "Hello, I am Ada." | 1.5 s | 124-219 | 124-180 |
| piper (joe) | "Sure, I can help you with that right away." | 2.4 s | 193-312 | 193-287 |
| Kokoro (jf_gongitsune) | "好的。" | 1.1 s | 1830-2125 | 1030-1380 |
| Kokoro (jf_gongitsune) | "我是你的语音助手，" | 2.1 s | 3850-4130 | 1950-2370 |
| Kokoro (jf_gongitsune) | "好的，我马上帮你查一下今天的天气。" | 4.8 s | 4440-9590 | 2920-4790 |

Kokoro's cost grows with the audio it makes (~0.7-1.0 s of CPU per second of speech, piper
~0.1), so the first Mandarin clause should be short: that is what cutting at commas is for.
Two ONNX threads for Kokoro did not help under this load (a quieter machine may differ).
"""

from __future__ import annotations

import concurrent.futures
import logging
import re
import threading
import time
from collections.abc import Iterable, Iterator

from protocol.audio import BYTES_PER_MS

from .tts import (
    EspeakSynthesizer,
    SpeechSynthesizer,
    select_synthesizer,
    split_clauses,
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


def first_clause(text: str) -> str:
    clauses = split_clauses(text)
    return clauses[0] if clauses else ""


class Speaker:
    """Synthesizers by language and voice, and at most one rehearsed clause."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._synthesizers: dict[str, SpeechSynthesizer] = {}
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._rehearsed: tuple[str, concurrent.futures.Future[bytes]] | None = None

    def synthesizer(self, text: str, voice: str, language: str | None = None) -> SpeechSynthesizer:
        language = language or reply_language(text)
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

    def rehearse(self, text: str, voice: str) -> None:
        """Start synthesizing the first clause of `text` on a thread (replacing any earlier
        rehearsal)."""
        clause = first_clause(text)
        key = f"{voice}\n{clause}"
        with self._lock:
            if not clause or (self._rehearsed is not None and self._rehearsed[0] == key):
                return
            if self._executor is None:
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    1, thread_name_prefix="localmodel-rehearsal"
                )
            if self._rehearsed is not None:
                self._rehearsed[1].cancel()  # only if it has not started
            future = self._executor.submit(self._synthesize, clause, voice, None, None)
            self._rehearsed = (key, future)
        logger.debug("speaker: rehearsing %r", clause)

    def speak(self, text: str, voice: str, stop: threading.Event) -> Iterator[tuple[str, bytes]]:
        """`speak_clauses` over the clauses of `text`."""
        return self.speak_clauses((text,), voice, stop)

    def speak_clauses(
        self, clauses: Iterable[str], voice: str, stop: threading.Event
    ) -> Iterator[tuple[str, bytes]]:
        """(text, audio) pieces, clause by clause as the clauses arrive: each clause's text
        (after a space for English after the first) comes with its first audio chunk, the
        rest of its audio follows in chunks of at most CHUNK_MS with "" as text. Long
        sentences are cut at commas first. Once `stop` is set nothing more is synthesized
        or yielded (a Kokoro run in progress is abandoned)."""
        index = 0
        language: str | None = None
        for given in clauses:
            for clause in split_clauses(given):
                if stop.is_set():
                    return
                # Once Mandarin, the whole reply stays with the Mandarin voice (a clause of
                # digits or Latin words in it too).
                language = "zh" if language == "zh" else reply_language(clause)
                started = time.perf_counter()
                pcm = self._take_rehearsal(clause, voice, stop) if index == 0 else None
                rehearsed = pcm is not None
                if pcm is None:
                    pcm = self._synthesize(clause, voice, language, stop)
                logger.debug(
                    "speaker: clause %d ready in %.0f ms (%s)",
                    index,
                    (time.perf_counter() - started) * 1000,
                    "rehearsed" if rehearsed else "synthesized",
                )
                if stop.is_set():
                    return
                label = clause if index == 0 or language == "zh" else " " + clause
                index += 1
                for offset in range(0, max(len(pcm), 1), _CHUNK_BYTES):
                    if stop.is_set():
                        return
                    yield label, pcm[offset : offset + _CHUNK_BYTES]
                    label = ""

    def close(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
            self._rehearsed = None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    def _synthesize(
        self, clause: str, voice: str, language: str | None, stop: threading.Event | None
    ) -> bytes:
        synthesizer = self.synthesizer(clause, voice, language)
        return b"".join(synthesizer.synthesize(clause, stop))

    def _take_rehearsal(self, clause: str, voice: str, stop: threading.Event) -> bytes | None:
        with self._lock:
            rehearsed, self._rehearsed = self._rehearsed, None
        if rehearsed is None or rehearsed[0] != f"{voice}\n{clause}":
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
