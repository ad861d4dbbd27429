"""LLM text to spoken clauses: what can be said aloud, cut where the voice can start speaking.

The language model streams text a token at a time; the voice wants whole clauses. `Clauses`
collects the pieces and hands out a clause as soon as one is complete: at the end of a
sentence, or at a comma once the clause is long enough to be worth synthesizing on its own
(the first audio comes sooner; a two-word clause would sound clipped). `speakable` removes what
a voice cannot say (markdown, emoji, links, code); a code block ends the reply.
"""

from __future__ import annotations

import queue
import re
import threading
from collections.abc import Callable, Generator, Iterator

MIN_CLAUSE_WORDS = 4  # English words before a comma may end a clause
MIN_CLAUSE_CHARS_ZH = 6  # Chinese characters before a comma may end a clause
MAX_CLAUSE_WORDS = 24  # a clause without punctuation is cut at a space beyond this
_CJK = re.compile(r"[\u3400-\u9fff]")
# A sentence ends at . ! ? (followed by a space, not "3.5" or "e.g."), or at Chinese 。！？.
_SENTENCE_END = re.compile(r"[.!?…]+[\"')\]]*(?=\s)|[。！？]+[”’」）]*")
_CLAUSE_END = re.compile(r"[,;:](?=\s)|[，；：、]")
_CODE_FENCE = "```"
_MARKUP = re.compile(r"\*\*?|__|`|^#+\s*|^\s*(?:[-*•]|\d+[.)])\s+", re.MULTILINE)
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)|https?://\S+|www\.\S+")
_EMOJI = re.compile(
    "[\U0001f000-\U0001faff\U00002600-\U000027bf\U0001f1e6-\U0001f1ff"
    "\u200d\ufe0e\ufe0f\u20e3\u2b00-\u2bff\u2300-\u23ff]"
)


def speakable(text: str) -> str:
    """`text` without markdown, emoji and links, its whitespace collapsed."""
    text = _LINK.sub(lambda match: match.group(1) or "", text)
    text = _MARKUP.sub("", _EMOJI.sub("", text))
    return re.sub(r"\s+([,.;:!?])", r"\1", re.sub(r"\s+", " ", text)).strip()


class Clauses:
    """Feed text pieces with `add`; complete clauses come back. `end` flushes the rest."""

    def __init__(self) -> None:
        self._buffer = ""
        self.code = False  # a code block started: nothing after it is spoken

    def add(self, piece: str) -> list[str]:
        if self.code:
            return []
        # Emphasis and emoji go at once: "**Sure!** Here" is a sentence end.
        self._buffer += _EMOJI.sub("", piece).replace("*", "")
        if _CODE_FENCE in self._buffer:
            self._buffer = self._buffer.split(_CODE_FENCE, 1)[0]
            self.code = True
            return self.end()
        found: list[str] = []
        while (cut := self._cut()) is not None:
            clause = speakable(self._buffer[:cut])
            self._buffer = self._buffer[cut:]
            if _has_words(clause):
                found.append(clause)
        return found

    def end(self) -> list[str]:
        """What is left, as the last clause (if it has anything to say)."""
        rest, self._buffer = speakable(self._buffer), ""
        return [rest] if _has_words(rest) else []

    def _cut(self) -> int | None:
        text = self._buffer
        for sentence in _SENTENCE_END.finditer(text):
            if any(c.isalpha() for c in text[: sentence.start()]):  # not "1." of a list
                return sentence.end()
        for clause in _CLAUSE_END.finditer(text):
            before = text[: clause.start()]
            if _long_enough(before):
                return clause.end()
        words = text.split(" ")
        if len(words) > MAX_CLAUSE_WORDS + 1:
            return len(" ".join(words[:MAX_CLAUSE_WORDS])) + 1
        return None


def _long_enough(text: str) -> bool:
    cjk = len(_CJK.findall(text))
    if cjk:
        return cjk >= MIN_CLAUSE_CHARS_ZH
    return len(text.split()) >= MIN_CLAUSE_WORDS


def _has_words(text: str) -> bool:
    return any(c.isalnum() for c in text)


def spoken_clauses(pieces: Iterator[str]) -> Generator[str, None, None]:
    """The clauses of a stream of text pieces, each as soon as it is complete."""
    clauses = Clauses()
    try:
        for piece in pieces:
            yield from clauses.add(piece)
            if clauses.code:
                return
        yield from clauses.end()
    finally:
        close = getattr(pieces, "close", None)
        if close is not None:
            close()


_POLL_S = 0.05
_END = object()


def produced_in_thread(
    produce: Callable[[], Iterator[str]],
    stop: threading.Event,
    *,
    name: str,
    max_queued: int = 16,
) -> Iterator[str]:
    """What `produce()` yields, computed on a thread of its own, while the caller consumes it.

    Lets the voice speak one clause while the model generates the next. The thread stops
    when `stop` is set or the caller stops iterating (it checks between items); an error in
    the producer is raised here.
    """
    items: queue.Queue[object] = queue.Queue(max_queued)
    quit_ = threading.Event()

    def put(item: object) -> bool:
        while not (stop.is_set() or quit_.is_set()):
            try:
                items.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        iterator = produce()
        try:
            for item in iterator:
                if not put(item):
                    return
        except Exception as exc:  # handed to the consumer
            put(exc)
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()
            put(_END)

    thread = threading.Thread(target=work, name=name, daemon=True)
    thread.start()
    try:
        while not stop.is_set():
            try:
                item = items.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            if item is _END:
                return
            if isinstance(item, Exception):
                raise item
            assert isinstance(item, str)
            yield item
    finally:
        quit_.set()
