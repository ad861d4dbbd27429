"""Who the offline assistant is, as far as rules can read it from the session instructions."""

from __future__ import annotations

import re
from dataclasses import dataclass

STYLES = ("brief", "formal", "cheerful")
_TONE_WORDS = {
    "brief": ("brief", "concise", "short", "terse", "succinct", "简短", "简洁"),
    "formal": ("formal", "polite", "professional", "courteous", "正式", "礼貌"),
    "cheerful": ("cheerful", "friendly", "upbeat", "enthusiastic", "happy", "开朗", "活泼", "热情"),
}
_NOT_NAMES = {"A", "An", "The", "My", "Our", "Your", "Not", "Very", "Now", "Here", "I", "In"}
CJK = re.compile(r"[\u4e00-\u9fff]")  # a Chinese character: text with them is Chinese


@dataclass(frozen=True)
class Persona:
    """Who the assistant is, as far as rules can read it from the instructions."""

    name: str | None = None
    greeting: str | None = None
    styles: frozenset[str] = frozenset()
    language: str = "en"

    @classmethod
    def from_instructions(cls, instructions: str | None) -> Persona:
        text = (instructions or "").strip()
        lowered = text.lower()
        styles = frozenset(
            style for style, words in _TONE_WORDS.items() if any(w in lowered for w in words)
        )
        return cls(_find_name(text), _find_greeting(text), styles, _find_language(text))

    @property
    def style(self) -> str:
        return next((s for s in STYLES if s in self.styles), "neutral")


def _find_name(text: str) -> str | None:
    for match in re.finditer(
        r"(?i:\byou are|\byou're|\byour name is|\bnamed|\bcalled)\s+([A-Z][\w'-]*)", text
    ):
        if match.group(1) not in _NOT_NAMES:
            return match.group(1)
    for pattern in (
        r"你(?:叫|的名字是)\s*([\u4e00-\u9fffA-Za-z]{1,8}?)(?=[，,。！!、\s]|$)",
        r"你是\s*([^一个\W\d][\u4e00-\u9fffA-Za-z]{0,5}?)(?=[，,。！!、\s]|$)",
    ):
        found = re.search(pattern, text)
        if found:
            return found.group(1)
    return None


def _find_greeting(text: str) -> str | None:
    quoted = r"(?:\"([^\"]+)\"|“([^”]+)”|「([^」]+)」|'([^']+)')"
    for pattern in (
        r"(?i:greet\w*(?:\s+(?:the\s+)?(?:user|users|people|them|everyone))?"
        rf"\s+(?:with|by saying))\s*:?\s*{quoted}",
        rf"(?i:(?:start|begin|open)\w*\s+(?:by saying|with))\s*:?\s*{quoted}",
        rf"(?i:greeting\s*(?:is|:))\s*{quoted}",
        rf"(?:用|以)\s*{quoted}\s*(?:打招呼|问候|开场)",
        rf"(?:问候语|开场白)\s*(?:是|为|：|:)\s*{quoted}",
    ):
        match = re.search(pattern, text)
        if match:
            return next(group for group in match.groups() if group is not None).strip()
    return None


def _find_language(text: str) -> str:
    if re.search(
        r"(?i)\b(?:speak|respond|answer|reply|talk)\w*\s+(?:only\s+)?in\s+(?:chinese|mandarin)\b",
        text,
    ):
        return "zh"
    if re.search(r"用中文|说中文|讲中文|普通话", text):
        return "zh"
    letters = [c for c in text if c.isalpha()]
    cjk = sum(1 for c in letters if CJK.match(c))
    return "zh" if letters and cjk / len(letters) > 0.3 else "en"
