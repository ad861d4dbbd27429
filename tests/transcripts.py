"""Scoring recognised speech: word error rate (English) and character error rate (Mandarin).

Both are edit distances summed over a set of utterances, divided by the reference length, after
the normalisation that keeps only what was said: case, punctuation and number spelling
("7" = "seven") do not count.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from num2words import num2words

ENGLISH_QUESTIONS = (
    "Hello, who are you?",
    "What can you do for me?",
    "Tell me a joke.",
    "I am feeling a little tired today.",
    "What is seven times eight?",
    "Thank you, goodbye.",
    "What time is it?",
    "What is the date today?",
    "What is two plus three?",
    "How are you doing this morning?",
    "What is your name?",
    "Could you recommend a good book?",
    "What is the weather like in Paris?",
    "Please speak a little more slowly.",
)
MANDARIN_SENTENCES = (
    "你好，你是谁？",
    "今天天气怎么样？",
    "我今天有点累。",
    "请给我讲一个笑话。",
    "谢谢你，再见。",
    "现在几点了？",
)
_CONTRACTIONS = {"i'm": "i am", "what's": "what is", "it's": "it is", "you're": "you are"}
_DIGITS = str.maketrans("0123456789", "零一二三四五六七八九")
_TRADITIONAL_SAMPLES = (
    "這們說麼個時間會來對還為嗎聽見裡頭點幾兩東車開關門問題謝請給讓認識語話讀寫學習經過現實氣歡樂愛"
)


def english_words(text: str) -> list[str]:
    words: list[str] = []
    for word in re.findall(r"[a-z0-9']+", text.lower().replace("-", " ")):
        if word.isdigit():
            words.extend(num2words(int(word)).replace("-", " ").replace(",", "").split())
        else:
            words.extend(_CONTRACTIONS.get(word, word).split())
    return words


def mandarin_characters(text: str) -> list[str]:
    return [c for c in text.translate(_DIGITS) if unicodedata.category(c)[0] in "LN"]


def edit_distance(reference: Sequence[str], hypothesis: Sequence[str]) -> int:
    row = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, 1):
        previous, row[0] = row[0], i
        for j, hyp in enumerate(hypothesis, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (ref != hyp))
    return row[-1]


def word_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    pairs = [
        (english_words(r), english_words(h)) for r, h in zip(references, hypotheses, strict=True)
    ]
    return sum(edit_distance(r, h) for r, h in pairs) / sum(len(r) for r, _ in pairs)


def char_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    pairs = [
        (mandarin_characters(r), mandarin_characters(h))
        for r, h in zip(references, hypotheses, strict=True)
    ]
    return sum(edit_distance(r, h) for r, h in pairs) / sum(len(r) for r, _ in pairs)


def traditional_characters(text: str) -> str:
    """The common traditional-only characters in `text` (none in simplified Chinese)."""
    return "".join(c for c in text if c in _TRADITIONAL_SAMPLES)
