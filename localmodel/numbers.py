"""Numbers in transcripts and replies: "<number> <operator> <number>" questions and number words."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from num2words import num2words


@dataclass(frozen=True)
class Arithmetic:
    """A two-operand question; `operator` is one of + - * /."""

    left: float
    operator: str
    right: float

    def value(self) -> float | None:
        """The answer, or None for a division by zero."""
        if self.operator == "/":
            return None if self.right == 0 else self.left / self.right
        return {"+": self.left + self.right, "-": self.left - self.right}.get(
            self.operator, self.left * self.right
        )


OPERATOR_WORDS = {"+": "plus", "-": "minus", "*": "times", "/": "divided by"}
OPERATOR_WORDS_ZH = {"+": "加", "-": "减", "*": "乘以", "/": "除以"}
_OPERATORS = (
    ("divided by", "/"),
    ("multiplied by", "*"),
    ("times", "*"),
    ("plus", "+"),
    ("minus", "-"),
    ("over", "/"),
    ("x", "*"),
    ("×", "*"),
    ("*", "*"),
    ("÷", "/"),
    ("/", "/"),
    ("+", "+"),
    ("-", "-"),
    ("加上", "+"),
    ("加", "+"),
    ("减去", "-"),
    ("减", "-"),
    ("乘以", "*"),
    ("乘", "*"),
    ("除以", "/"),
)
# Words a transcript spells numbers with, read back (num2words only goes the other way).
_SCALES = {"hundred": 100, "thousand": 1_000, "million": 1_000_000}
_NUMBER_WORDS = {num2words(i): i for i in (*range(20), *range(20, 100, 10))}
# What the recogniser hears for a number right next to an operator.
_HOMOPHONES = {"to": 2, "too": 2, "for": 4, "fore": 4, "won": 1, "ate": 8, "tree": 3, "oh": 0}


def find_arithmetic(text: str) -> Arithmetic | None:
    """The first "<number> <operator> <number>" in a transcript, in words or digits."""
    verb = re.search(r"\b(add|subtract|multiply|divide)\s+(.+)", text)
    if verb:
        kind, tokens = verb.group(1), _tokens(verb.group(2))
        # "add one hundred and five and two": the last connector that leaves a number on
        # its left splits the operands.
        for i in reversed(range(1, len(tokens) - 1)):
            if tokens[i] not in ("and", "to", "from", "by"):
                continue
            left, right = _parse_number(tokens[:i]), _leading_number(tokens[i + 1 :])
            if left is None or right is None:
                continue
            if kind == "add":
                return Arithmetic(left, "+", right)
            if kind == "subtract":
                return Arithmetic(right, "-", left)
            return Arithmetic(left, "*" if kind == "multiply" else "/", right)
    for phrase, operator in _OPERATORS:
        pattern = (
            rf"(?<![a-z]){re.escape(phrase)}(?![a-z])" if phrase.isascii() else re.escape(phrase)
        )
        for match in re.finditer(pattern, text):
            before, after = text[: match.start()], text[match.end() :]
            left = _trailing_number(_tokens(before))
            right = _leading_number(_tokens(after))
            if left is not None and right is not None:
                return Arithmetic(left, operator, right)
    return None


def _tokens(text: str) -> list[str]:
    return re.findall(r"\d+(?:\.\d+)?|[a-z']+|[\u4e00-\u9fff]", text)


def _is_number_token(token: str) -> bool:
    return token in _NUMBER_WORDS or token in _SCALES or bool(re.fullmatch(r"\d+(?:\.\d+)?", token))


def _trailing_number(tokens: list[str]) -> float | None:
    start = len(tokens)
    while start > 0 and (
        _is_number_token(tokens[start - 1])
        or (tokens[start - 1] == "and" and start - 2 >= 0 and tokens[start - 2] in _SCALES)
    ):
        start -= 1
    if start == len(tokens):
        return float(_HOMOPHONES[tokens[-1]]) if tokens and tokens[-1] in _HOMOPHONES else None
    return _parse_number(tokens[start:])


def _leading_number(tokens: list[str]) -> float | None:
    end = 0
    while end < len(tokens) and (
        _is_number_token(tokens[end])
        or (
            tokens[end] == "and"
            and end > 0
            and tokens[end - 1] in _SCALES
            and end + 1 < len(tokens)
            and tokens[end + 1] in _NUMBER_WORDS
        )
    ):
        end += 1
    if end == 0:
        return float(_HOMOPHONES[tokens[0]]) if tokens and tokens[0] in _HOMOPHONES else None
    return _parse_number(tokens[:end])


def _parse_number(tokens: list[str]) -> float | None:
    if len(tokens) == 1 and re.fullmatch(r"\d+(?:\.\d+)?", tokens[0]):
        return float(tokens[0])
    total = current = 0
    seen = False
    for i, token in enumerate(tokens):
        if token == "and" and 0 < i < len(tokens) - 1 and tokens[i - 1] in _SCALES:
            continue
        if token in _NUMBER_WORDS:
            current += _NUMBER_WORDS[token]
        elif token == "hundred":
            current = max(current, 1) * 100
        elif token in _SCALES:
            total += max(current, 1) * _SCALES[token]
            current = 0
        elif token.isdigit():
            current += int(token)
        else:
            return None
        seen = True
    return float(total + current) if seen else None


def number_words(value: float) -> str:
    """English words for a number, e.g. 5 -> "five", -3.5 -> "minus three point five"."""
    if value < 0:  # num2words drops the sign of -0.25
        return "minus " + number_words(-value)
    rounded = Decimal(f"{value:.2f}").normalize()
    # Spoken the short way: "one hundred five", not "one hundred and five".
    return re.sub(r",| and(?= )", "", num2words(rounded if rounded % 1 else int(rounded)))


def number_digits(value: float) -> str:
    """Digits for a spoken (Chinese) answer: 5.0 -> \"5\", 3.5 -> \"3.5\"."""
    rounded = round(value, 2)
    return str(int(rounded)) if rounded == int(rounded) else f"{rounded:g}"
