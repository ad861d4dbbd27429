"""The clause splitter and cleaner between the language model and the voice (no model)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from localmodel.clauses import Clauses, produced_in_thread, speakable, spoken_clauses

pytestmark = pytest.mark.unit


def clauses_of(text: str, piece: int = 3) -> list[str]:
    """Clauses of `text` streamed in `piece`-character pieces, as tokens would come."""
    return list(spoken_clauses(iter([text[i : i + piece] for i in range(0, len(text), piece)])))


@pytest.mark.parametrize(
    ("text", "clauses"),
    [
        ("Hello! I'm Ada. How can I help?", ["Hello!", "I'm Ada.", "How can I help?"]),
        # A comma ends a clause once it has a few words, not after one or two.
        (
            "Well, that sounds like a long day, so take it easy tonight.",
            ["Well, that sounds like a long day,", "so take it easy tonight."],
        ),
        ("It costs 3.5 dollars today. Yes", ["It costs 3.5 dollars today.", "Yes"]),
        (
            "你好！我是小艾，很高兴认识你，有什么可以帮你？",
            ["你好！", "我是小艾，很高兴认识你，", "有什么可以帮你？"],
        ),
        ("**Sure!** Here is a joke 😀: why?", ["Sure!", "Here is a joke:", "why?"]),
        ("Try this:\n```python\nprint(1)\n```\nDone.", ["Try this:"]),
        ("1. Rest. 2. Drink water.", ["Rest.", "Drink water."]),
        ("", []),
    ],
)
def test_clauses_of_streamed_text(text: str, clauses: list[str]) -> None:
    assert clauses_of(text) == clauses
    assert clauses_of(text, piece=1) == clauses


def test_clause_comes_as_soon_as_it_is_complete() -> None:
    splitter = Clauses()
    assert splitter.add("Hello there") == []
    assert splitter.add("! How") == ["Hello there!"]
    assert splitter.add(" are you?") == []  # the end of the text may still grow ("?!")
    assert splitter.add(" Fine") == ["How are you?"]
    assert splitter.end() == ["Fine"]


def test_a_clause_without_punctuation_is_cut_at_a_space() -> None:
    words = " ".join(f"w{i}" for i in range(60))
    clauses = clauses_of(words)
    assert len(clauses) == 3 and all(len(c.split()) <= 24 for c in clauses)
    assert " ".join(clauses) == words


def test_speakable_removes_markup_links_and_emoji() -> None:
    assert speakable("## Title\n- *one* and __two__ 🎉") == "Title one and two"
    assert speakable("See [the docs](https://x.org) or https://y.org now") == "See the docs or now"


def test_produced_in_thread_overlaps_and_stops() -> None:
    stop = threading.Event()
    made: list[int] = []

    def produce() -> Iterator[str]:
        for i in range(1000):
            made.append(i)
            time.sleep(0.01)
            yield str(i)

    items = produced_in_thread(produce, stop, name="test-producer")
    assert next(items) == "0"
    stop.set()
    assert list(items) == []
    time.sleep(0.2)
    count = len(made)
    time.sleep(0.2)
    assert len(made) == count < 100  # the producer stopped too
    assert not [t for t in threading.enumerate() if t.name == "test-producer"]


def test_produced_in_thread_raises_the_producers_error() -> None:
    def produce() -> Iterator[str]:
        yield "a"
        raise ValueError("boom")

    items = produced_in_thread(produce, threading.Event(), name="test-producer")
    assert next(items) == "a"
    with pytest.raises(ValueError, match="boom"):
        next(items)
