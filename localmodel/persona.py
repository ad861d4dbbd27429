"""Who the offline assistant is, as far as rules can read it from the session instructions."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .llm import Message

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


MAX_INSTRUCTIONS_CHARS = 1200  # of the session instructions the language model sees
_STYLE_EN = {
    "brief": "Keep every answer to one short sentence.",
    "formal": "Speak formally and politely.",
    "cheerful": "Be warm and cheerful.",
}
_STYLE_ZH = {
    "brief": "每次只说一句话。",
    "formal": "说话正式、礼貌。",
    "cheerful": "语气热情、开朗。",
}
_RULES_EN = (
    "{who} You run offline on this computer and talk with people by voice. Answer in one or "
    "two short sentences of plain spoken English, at most 25 words. Never use lists, "
    "markdown, emoji or code. You can chat, tell jokes and short stories, answer simple "
    "questions, tell the time and the date, and do arithmetic. If you do not know something, "
    "say so. When the user's message says how they sound, answer with care for how they feel."
)
_RULES_ZH = (
    "{who}在这台电脑上离线运行，用语音和人交谈。请始终用简体中文回答，每次只说一两句简短、"
    "口语化的话，不超过四十个字。不要使用列表、Markdown、表情符号或代码。你会聊天、讲笑话、"
    "讲小故事、回答简单的问题、报时和做算术。不知道的事情就说不知道。如果用户的话里说明了"
    "他的语气，请体贴地回应他的感受。"
)
# Example turns after the system message: a small model follows examples better than rules.
# Kept in the KV cache with the system message, so they cost nothing per turn.
_EXAMPLES_EN = (
    ("Who are you?", "I'm {name}. I run right here on this computer, so just talk to me."),
    ("Hi there!", "Hi! It's nice to hear from you. What's on your mind?"),
    (
        "(The user sounds tired: they speak quietly and slowly.) I just got home from work.",
        "Welcome home. You sound worn out, so take it easy and rest a little.",
    ),
    ("I feel a bit sad today.", "I'm sorry to hear that. Do you want to talk about it?"),
)
_EXAMPLES_ZH = (
    ("你是谁？", "我是{name}，就在这台电脑上运行，有什么想聊的尽管说。"),
    ("你好！", "你好！很高兴和你聊天，有什么想说的吗？"),
    (
        "（用户听起来很累，说话又轻又慢。）我刚下班回家。",
        "欢迎回家。你听起来很累，好好休息一下吧。",
    ),
    ("我今天有点难过。", "听到这个我很难过。想和我聊聊吗？"),
)


def persona_prompt(instructions: str | None, language: str | None = None) -> tuple[Message, ...]:
    """The language model's fixed prompt start: how a voice assistant talks, the persona of
    the session instructions, and a few example turns.

    `language` overrides the persona's ("zh" when the user spoke Mandarin to an English
    persona): the whole prompt is in the language of the answer, which keeps a small model
    from switching languages.
    """
    persona = Persona.from_instructions(instructions)
    own = (instructions or "").strip()[:MAX_INSTRUCTIONS_CHARS]
    if (language or persona.language) == "zh":
        who = (
            f"你是{persona.name}，一个友好的语音助手，"
            if persona.name
            else "你是一个友好的语音助手，"
        )
        system = _RULES_ZH.format(who=who) + "".join(
            _STYLE_ZH[s] for s in STYLES if s in persona.styles
        )
        system += f"\n\n角色设定：{own}" if own else ""
        examples = _EXAMPLES_ZH
        name = persona.name or "你的离线语音助手"
    else:
        who = (
            f"You are {persona.name}, a friendly voice assistant."
            if persona.name
            else "You are a friendly voice assistant."
        )
        system = " ".join(
            [_RULES_EN.format(who=who), *(_STYLE_EN[s] for s in STYLES if s in persona.styles)]
        )
        system += f"\n\nYour persona: {own}" if own else ""
        examples = _EXAMPLES_EN
        name = persona.name or "your offline voice assistant"
    turns = [
        Message(role, text.format(name=name))
        for user, answer in examples
        for role, text in (("user", user), ("assistant", answer))
    ]
    return (Message("system", system), *turns)
