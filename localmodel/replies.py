"""Deterministic replies of the offline assistant, in the persona the session instructions set."""

from __future__ import annotations

import re
import statistics
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from protocol.prosody import ToneFeatures

from .numbers import (
    OPERATOR_WORDS,
    OPERATOR_WORDS_ZH,
    Arithmetic,
    find_arithmetic,
    number_digits,
    number_words,
)
from .persona import CJK, Persona

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Reply:
    """What to say, which rule chose it and which tone-of-voice reaction (if any) shaped it."""

    text: str
    rule: str
    tone: str | None = None


# key -> style -> template; "neutral" is the fallback for every style.
_EN: dict[str, dict[str, str]] = {
    "greeting": {
        "neutral": "Hello! {intro}How can I help?",
        "formal": "Good day. {intro_formal}How may I assist you?",
        "cheerful": "Hi there! {intro}What can I do for you today?",
        "brief": "Hello! {intro}",
    },
    "hello": {"neutral": "Hello!", "formal": "Good day.", "cheerful": "Hi there!"},
    "how_are_you": {
        "neutral": "I'm doing well, thanks. How are you?",
        "formal": "I am well, thank you. How are you?",
        "cheerful": "I'm great, thanks for asking! How are you?",
        "brief": "Fine, thanks.",
    },
    "name": {
        "neutral": "I'm {name}.",
        "formal": "My name is {name}.",
        "cheerful": "I'm {name}! Nice to meet you!",
    },
    "thanks": {
        "neutral": "You're welcome.",
        "formal": "You are most welcome.",
        "cheerful": "You're very welcome!",
        "brief": "Welcome.",
    },
    "goodbye": {
        "neutral": "Goodbye!",
        "formal": "Goodbye. It was a pleasure.",
        "cheerful": "Bye for now, take care!",
    },
    "time": {
        "neutral": "It's {time}.",
        "formal": "It is {time}.",
        "cheerful": "It's {time}!",
        "brief": "{time}.",
    },
    "date": {
        "neutral": "Today is {date}.",
        "formal": "Today is {date}.",
        "cheerful": "Today is {date}!",
        "brief": "{date}.",
    },
    "arithmetic": {
        "neutral": "{question} is {answer}.",
        "formal": "{question} equals {answer}.",
        "cheerful": "{question} is {answer}!",
        "brief": "{Answer}.",
    },
    "divide_by_zero": {
        "neutral": "I can't divide by zero.",
        "formal": "One cannot divide by zero.",
    },
    "repeat_nothing": {"neutral": "I haven't said anything yet."},
    "stop": {"neutral": "Okay.", "formal": "Certainly.", "brief": "Okay."},
    "not_heard": {
        "neutral": "Sorry, I didn't catch that.",
        "formal": "I beg your pardon, I did not catch that.",
    },
    "not_understood": {
        "neutral": "Sorry, I didn't understand that.",
        "formal": "I am sorry, I did not understand that.",
        "cheerful": "Oops, I didn't understand that. Could you say it another way?",
        "brief": "Sorry, I didn't understand.",
    },
    "raised_voice": {
        "neutral": "I hear you, let's take this calmly.",
        "formal": "I understand. Let us take this calmly.",
    },
    "tired": {
        "neutral": "You sound tired.",
        "cheerful": "You sound tired, maybe take a little break?",
    },
}
_ZH: dict[str, str] = {
    "greeting": "你好！{intro}有什么可以帮你的吗？",
    "hello": "你好！",
    "how_are_you": "我很好，谢谢！你呢？",
    "name": "我是{name}。",
    "thanks": "不客气。",
    "goodbye": "再见！",
    "time": "现在是{hour}点{minute}分。",
    "date": "今天是{month}月{day}日，{weekday}。",
    "arithmetic": "{question}等于{answer}。",
    "divide_by_zero": "不能除以零。",
    "repeat_nothing": "我还没有说过话。",
    "stop": "好的。",
    "not_heard": "抱歉，我没听清。",
    "not_understood": "抱歉，我没听懂。",
    "raised_voice": "别着急，我在听。",
    "tired": "你听起来有点累。",
}
_ZH_WEEKDAYS = "星期一 星期二 星期三 星期四 星期五 星期六 星期日".split()

_EN_RULES: tuple[tuple[str, re.Pattern[str] | None], ...] = tuple(
    (rule, re.compile(pattern) if pattern else None)
    for rule, pattern in (
        ("stop", r"\b(?:stop|be quiet|quiet|shut up|silence|enough|hush|never ?mind|cancel)\b"),
        ("repeat", r"\b(?:repeat|say (?:that|it) again|come again|what did you say|pardon)\b"),
        ("arithmetic", ""),  # before date/time: "what is ..." questions are sums first
        # "what is the day to day": how pocketsphinx often hears "what is the date today".
        (
            "date",
            r"\b(?:date|what day|which day|day is it|day of the week|what(?:'s| is) the day)\b",
        ),
        ("time", r"\b(?:what time|the time|time is it|current time)\b"),
        (
            "how_are_you",
            r"\bhow(?:'re| are) (?:you|ya)\b|\bhow(?:'s| is) it going\b|\bhow do you do\b",
        ),
        ("name", r"\bwhat(?:'s| is) your name\b|\bwho are you\b|\bwhat are you called\b"),
        (
            "greeting",
            r"\b(?:hello|hi|hey|hiya|howdy|greetings|good (?:morning|afternoon|evening))\b",
        ),
        ("thanks", r"\b(?:thanks|thank you|cheers)\b"),
        ("goodbye", r"\b(?:goodbye|good bye|bye|see you|good night)\b"),
    )
)
_GREETING = re.compile(
    r"\b(?:hello|hi|hey|hiya|howdy|greetings|good (?:morning|afternoon|evening))\b"
    r"|你好|您好|嗨|早上好|下午好|晚上好|哈喽"
)
_ZH_RULES: tuple[tuple[str, re.Pattern[str] | None], ...] = tuple(
    (rule, re.compile(pattern) if pattern else None)
    for rule, pattern in (
        ("stop", r"停|别说了|安静|闭嘴"),
        ("repeat", r"再说一遍|重复|你说什么"),
        ("arithmetic", ""),
        ("date", r"几号|日期|星期几|几月"),
        ("time", r"几点|时间"),
        ("how_are_you", r"你好吗|最近怎么样|你怎么样"),
        ("name", r"你叫什么|你是谁|你的名字"),
        ("greeting", r"你好|您好|嗨|早上好|下午好|晚上好|哈喽"),
        ("thanks", r"谢谢|多谢"),
        ("goodbye", r"再见|拜拜"),
    )
)


@dataclass
class _VoiceBaseline:
    """The speaker's usual loudness and pitch, from their recent utterances."""

    loudness: deque[float] = field(default_factory=lambda: deque(maxlen=5))
    pitch: deque[float] = field(default_factory=lambda: deque(maxlen=5))

    def add(self, tone: ToneFeatures) -> None:
        self.loudness.append(tone.loudness_dbfs)
        if tone.pitch_median_hz is not None:
            self.pitch.append(tone.pitch_median_hz)


# Tone-of-voice thresholds: absolute levels work from the first turn, relative ones once the
# speaker's baseline is known (browser AGC keeps most speech between -30 and -15 dBFS).
LOUD_DBFS = -12.0
LOUDER_THAN_USUAL_DB = 6.0
HIGHER_THAN_USUAL = 1.3
QUIET_DBFS = -32.0
SLOW_RATE_SPS = 2.5
MIN_TONE_VOICED_S = 0.4


class ReplyEngine:
    """Answers one session's transcripts by rules; keeps its last reply and voice baseline."""

    def __init__(self, persona: Persona | None = None, *, clock: Clock | None = None) -> None:
        self.persona = persona or Persona()
        self._clock = clock or (lambda: datetime.now().astimezone())
        self._last: Reply | None = None
        self._baseline = _VoiceBaseline()

    @classmethod
    def from_instructions(
        cls, instructions: str | None, *, clock: Clock | None = None
    ) -> ReplyEngine:
        return cls(Persona.from_instructions(instructions), clock=clock)

    @property
    def last_reply(self) -> Reply | None:
        return self._last

    def greeting(self) -> Reply:
        """What the assistant says when it speaks first."""
        return self._remember(Reply(self._greeting_text(), "greeting"))

    def reply(self, transcript: str, tone: ToneFeatures | None = None) -> Reply:
        """The answer to one user turn; remembered (for "repeat") and added to the baseline."""
        result = self.preview(transcript, tone)
        if tone is not None and tone.voiced_s >= MIN_TONE_VOICED_S:
            self._baseline.add(tone)
        return result if result.rule == "repeat" else self._remember(result)

    def preview(self, transcript: str, tone: ToneFeatures | None = None) -> Reply:
        """What `reply` would answer now, without changing the engine (speculative replies)."""
        reaction = self._tone_reaction(tone) if tone is not None else None
        rule, text = self._answer(transcript)
        if reaction is not None and rule != "stop":
            text = self._join(self._say(reaction), text)
        return Reply(text, rule, reaction)

    def _join(self, first: str, second: str) -> str:
        return first + second if self.persona.language == "zh" else f"{first} {second}"

    def _remember(self, reply: Reply) -> Reply:
        self._last = reply
        return reply

    def _answer(self, transcript: str) -> tuple[str, str]:
        text = _normalize(transcript)
        if not text:
            return "not_understood", self._say("not_heard")
        for rule, pattern in _ZH_RULES if CJK.search(text) else _EN_RULES:
            if pattern is None:
                problem = find_arithmetic(text)
                if problem is not None:
                    return rule, self._arithmetic_text(problem)
            elif pattern.search(text):
                return rule, self._rule_text(rule, text)
        return "not_understood", self._say("not_understood")

    def _rule_text(self, rule: str, text: str) -> str:
        now = self._clock()
        if rule == "how_are_you" and _GREETING.search(text):
            return self._join(self._say("hello"), self._say(rule))
        if rule == "repeat":
            return self._last.text if self._last is not None else self._say("repeat_nothing")
        if rule == "greeting":
            return self._greeting_text()
        if rule == "time":
            clock_time = now.strftime("%I:%M %p").lstrip("0")
            return self._say("time", time=clock_time, hour=now.hour, minute=now.minute)
        if rule == "date":
            date = f"{now:%A}, {now:%B} {now.day}"
            weekday = _ZH_WEEKDAYS[now.weekday()]
            return self._say("date", date=date, month=now.month, day=now.day, weekday=weekday)
        if rule == "name":
            if self.persona.name is None:
                return self._say("name", name="your assistant")
            return self._say("name", name=self.persona.name)
        return self._say(rule)

    def _greeting_text(self) -> str:
        if self.persona.greeting:
            return self.persona.greeting
        name = self.persona.name
        intro = (
            (f"我是{name}。" if self.persona.language == "zh" else f"I'm {name}. ") if name else ""
        )
        return self._say(
            "greeting", intro=intro, intro_formal=f"My name is {name}. " if name else ""
        )

    def _arithmetic_text(self, problem: Arithmetic) -> str:
        value = problem.value()
        if value is None:
            return self._say("divide_by_zero")
        zh = self.persona.language == "zh"
        say = number_digits if zh else number_words
        left, operator, right = say(problem.left), problem.operator, say(problem.right)
        question = (
            f"{left}{OPERATOR_WORDS_ZH[operator]}{right}"
            if zh
            else f"{left} {OPERATOR_WORDS[operator]} {right}"
        )
        answer = say(value)
        return self._say(
            "arithmetic",
            question=question[:1].upper() + question[1:],
            answer=answer,
            Answer=answer.capitalize(),
        )

    def _say(self, key: str, **values: object) -> str:
        if self.persona.language == "zh":
            template = _ZH[key]
        else:
            variants = _EN[key]
            template = variants.get(self.persona.style, variants["neutral"])
        return template.format(**values).strip()

    def _tone_reaction(self, tone: ToneFeatures) -> str | None:
        if tone.voiced_s < MIN_TONE_VOICED_S:
            return None
        usual_loudness = (
            statistics.median(self._baseline.loudness) if self._baseline.loudness else None
        )
        usual_pitch = statistics.median(self._baseline.pitch) if self._baseline.pitch else None
        louder = (
            usual_loudness is not None
            and tone.loudness_dbfs >= usual_loudness + LOUDER_THAN_USUAL_DB
        )
        higher = (
            usual_pitch is not None
            and tone.pitch_median_hz is not None
            and tone.pitch_median_hz >= usual_pitch * HIGHER_THAN_USUAL
            and usual_loudness is not None
            and tone.loudness_dbfs >= usual_loudness + LOUDER_THAN_USUAL_DB / 2
        )
        if tone.loudness_dbfs >= LOUD_DBFS or louder or higher:
            return "raised_voice"
        quiet = tone.loudness_dbfs <= QUIET_DBFS or (
            usual_loudness is not None
            and tone.loudness_dbfs <= usual_loudness - LOUDER_THAN_USUAL_DB
        )
        if quiet and 0 < tone.speaking_rate_sps < SLOW_RATE_SPS:
            return "tired"
        return None


def _normalize(transcript: str) -> str:
    text = transcript.lower().replace("’", "'")
    text = re.sub(r"(?<=[a-z])-(?=[a-z])", " ", text)  # twenty-five
    text = re.sub(r"(?<=\d)\s*([+\-*/×÷x])\s*(?=\d)", r" \1 ", text)
    return re.sub(r"[^\w'+\-*/×÷.\u4e00-\u9fff ]+", " ", text).strip(" .")
