"""Deterministic replies of the offline assistant (what rules say exactly), in the persona of
the session instructions; the rest goes to the language model (llm.py)."""

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


# key -> style -> template; "neutral" is the fallback for every style. Only what the rules say
# exactly: everything else is the language model's (rule "llm").
_EN: dict[str, dict[str, str]] = {
    "greeting": {
        "neutral": "Hello! {intro}How can I help?",
        "formal": "Good day. {intro_formal}How may I assist you?",
        "cheerful": "Hi there! {intro}What can I do for you today?",
        "brief": "Hello! {intro}",
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
    "time": "现在是{hour}点{minute}分。",
    "date": "今天是{month}月{day}日，{weekday}。",
    "arithmetic": "{question}等于{answer}。",
    "divide_by_zero": "不能除以零。",
    "repeat_nothing": "我还没有说过话。",
    "stop": "好的。",
    "not_heard": "抱歉，我没听清。",
    "raised_voice": "别着急，我在听。",
    "tired": "你听起来有点累。",
}
# How the user sounded, told to the language model with their words (it answers to fit).
TONE_NOTES = {
    "en": {
        "tired": "(The user sounds tired: they speak quietly and slowly.)",
        "raised_voice": "(The user sounds upset: they speak loudly.)",
        "fast": "(The user speaks fast, as if in a hurry: answer very briefly.)",
    },
    "zh": {
        "tired": "（用户听起来很累，说话又轻又慢。）",
        "raised_voice": "（用户听起来很激动，说话很大声。）",
        "fast": "（用户说得很快，好像很着急，请回答得非常简短。）",
    },
}
_ZH_WEEKDAYS = "星期一 星期二 星期三 星期四 星期五 星期六 星期日".split()
# Commands are only commands in a short utterance ("stop" yes, "I can't stop coughing" no).
COMMAND_WORDS = 5
COMMAND_CHARS_ZH = 6

_EN_RULES: tuple[tuple[str, re.Pattern[str] | None], ...] = tuple(
    (rule, re.compile(pattern) if pattern else None)
    for rule, pattern in (
        ("stop", r"\b(?:stop|be quiet|quiet|shut up|silence|enough|hush|never ?mind|cancel)\b"),
        ("repeat", r"\b(?:repeat|say (?:that|it) again|come again|what did you say|pardon)\b"),
        ("arithmetic", ""),  # before date/time: "what is ..." questions are sums first
        (
            "date",
            r"\bwhat(?:'s| is)? (?:the |today's )?date\b|\bthe date today\b|\bdate today\b"
            r"|\b(?:what|which) day\b|\bday is it\b|\bday of the week\b|\bwhat(?:'s| is) the day\b",
        ),
        (
            "time",
            r"\bwhat(?:'s| is)? (?:the )?time\b|\btime is it\b|\bcurrent time\b"
            r"|\b(?:tell|give|know|have) (?:me )?the (?:current )?time\b",
        ),
    )
)
_ZH_RULES: tuple[tuple[str, re.Pattern[str] | None], ...] = tuple(
    (rule, re.compile(pattern) if pattern else None)
    for rule, pattern in (
        ("stop", r"停|别说了|安静|闭嘴"),
        ("repeat", r"再说一遍|重复|你说什么"),
        ("arithmetic", ""),
        ("date", r"几号|日期|星期几|几月"),
        ("time", r"几点|什么时间|现在时间"),
    )
)
_COMMANDS = frozenset({"stop", "repeat"})


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
FAST_RATE_SPS = 6.5  # syllables per second; conversational English is ~4-5
MIN_TONE_VOICED_S = 0.4


class ReplyEngine:
    """Answers what rules answer exactly (time, date, arithmetic, greeting, stop, repeat) and
    leaves the rest to the language model (rule "llm", empty text); keeps one session's last
    reply and voice baseline."""

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
        return self.remember(Reply(self._greeting_text(), "greeting"))

    def reply(self, transcript: str, tone: ToneFeatures | None = None) -> Reply:
        """The answer to one user turn; remembered (for "repeat") and added to the baseline.

        Rule "llm" (empty text) leaves it to the language model: `remember` what it said.
        """
        result = self.preview(transcript, tone)
        if tone is not None and tone.voiced_s >= MIN_TONE_VOICED_S:
            self._baseline.add(tone)
        return result if result.rule in ("repeat", "llm") else self.remember(result)

    def preview(self, transcript: str, tone: ToneFeatures | None = None) -> Reply:
        """What `reply` would answer now, without changing the engine (speculative replies)."""
        reaction = self._tone_reaction(tone) if tone is not None else None
        rule, text = self._answer(transcript)
        if reaction is not None and rule not in ("stop", "llm") and reaction in _EN:
            text = self._join(self._say(reaction), text)
        return Reply(text, rule, reaction)

    def remember(self, reply: Reply) -> Reply:
        """`reply` is what was said last ("repeat" says it again)."""
        if reply.text:
            self._last = reply
        return reply

    def opening(self, reaction: str | None) -> str:
        """What a reply to a tired or raised voice starts with (the model goes on from it)."""
        return self._say(reaction) if reaction in ("tired", "raised_voice") else ""

    def tone_note(self, reaction: str | None, language: str) -> str:
        """How the user sounded, for the language model's user turn ("" if unremarkable)."""
        return TONE_NOTES["zh" if language == "zh" else "en"].get(reaction or "", "")

    def _join(self, first: str, second: str) -> str:
        return first + second if self.persona.language == "zh" else f"{first} {second}"

    def _answer(self, transcript: str) -> tuple[str, str]:
        text = _normalize(transcript)
        if not text:
            return "not_heard", self._say("not_heard")
        chinese = bool(CJK.search(text))
        short = len(text) <= COMMAND_CHARS_ZH if chinese else len(text.split()) <= COMMAND_WORDS
        for rule, pattern in _ZH_RULES if chinese else _EN_RULES:
            if rule in _COMMANDS and not short:
                continue
            if pattern is None:
                problem = find_arithmetic(text)
                if problem is not None:
                    return rule, self._arithmetic_text(problem)
            elif pattern.search(text):
                return rule, self._rule_text(rule)
        return "llm", ""

    def _rule_text(self, rule: str) -> str:
        now = self._clock()
        if rule == "repeat":
            return self._last.text if self._last is not None else self._say("repeat_nothing")
        if rule == "time":
            clock_time = now.strftime("%I:%M %p").lstrip("0")
            return self._say("time", time=clock_time, hour=now.hour, minute=now.minute)
        if rule == "date":
            date = f"{now:%A}, {now:%B} {now.day}"
            weekday = _ZH_WEEKDAYS[now.weekday()]
            return self._say("date", date=date, month=now.month, day=now.day, weekday=weekday)
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
        if tone.speaking_rate_sps >= FAST_RATE_SPS:
            return "fast"
        return None


def _normalize(transcript: str) -> str:
    text = transcript.lower().replace("’", "'")
    text = re.sub(r"(?<=[a-z])-(?=[a-z])", " ", text)  # twenty-five
    text = re.sub(r"(?<=\d)\s*([+\-*/×÷x])\s*(?=\d)", r" \1 ", text)
    return re.sub(r"[^\w'+\-*/×÷.\u4e00-\u9fff ]+", " ", text).strip(" .")
