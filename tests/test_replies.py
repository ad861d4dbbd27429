"""Rule replies: what the rules answer exactly (time, date, arithmetic, greeting, stop, repeat)
and what they leave to the language model; persona styles, tone reactions, Chinese."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import pytest

from localmodel.numbers import number_words
from localmodel.replies import TONE_NOTES, Reply, ReplyEngine
from protocol.prosody import ToneFeatures

pytestmark = pytest.mark.unit

NOW = datetime(2025, 11, 25, 15, 5)
CALM = ToneFeatures(
    duration_s=1.5,
    voiced_s=0.8,
    pitch_median_hz=120.0,
    pitch_range_hz=40.0,
    loudness_dbfs=-24.0,
    speaking_rate_sps=4.5,
    syllables=6,
)


def engine(instructions: str = "") -> ReplyEngine:
    return ReplyEngine.from_instructions(instructions, clock=lambda: NOW)


def test_replies_greeting_uses_name_and_persona_greeting() -> None:
    assert engine("You are Ada.").greeting().text == "Hello! I'm Ada. How can I help?"
    custom = engine('You are Max. Greet the user with "Good evening, I am Max."')
    assert custom.greeting().text == "Good evening, I am Max."
    assert custom.greeting().rule == "greeting"


@pytest.mark.parametrize(
    ("transcript", "rule"),
    [
        # Small talk is the language model's: the six everyday turns of issue 15, and more.
        ("Hello, who are you?", "llm"),
        ("What can you do for me?", "llm"),
        ("Tell me a joke.", "llm"),
        ("I am feeling a little tired today.", "llm"),
        ("What is seven times eight?", "arithmetic"),
        ("Thank you, goodbye.", "llm"),
        ("hello how are you", "llm"),
        ("the purple elephant sings", "llm"),
        # Words of a rule inside a longer sentence are not that rule.
        ("I can't stop thinking about my holiday", "llm"),
        ("I had the time of my life", "llm"),
        ("I have a date tonight", "llm"),
        ("what time is it", "time"),
        ("can you tell me the time please", "time"),
        ("what is the date today", "date"),
        ("what day of the week is it", "date"),
        ("what is the day to day", "date"),
        ("what is two plus three", "arithmetic"),
        ("repeat that", "repeat"),
        ("please say that again", "repeat"),
        ("stop", "stop"),
        ("be quiet", "stop"),
        ("", "not_heard"),
    ],
)
def test_replies_rule_for_transcript(transcript: str, rule: str) -> None:
    assert engine().reply(transcript).rule == rule


def test_replies_time_and_date_come_from_the_clock() -> None:
    assert engine().reply("what time is it").text == "It's 3:05 PM."
    assert engine().reply("what's the date").text == "Today is Tuesday, November 25."
    later = ReplyEngine(clock=lambda: datetime(2026, 1, 1, 9, 30))
    assert later.reply("what time is it").text == "It's 9:30 AM."


@pytest.mark.parametrize(
    ("transcript", "answer"),
    [
        ("what is two plus three", "Two plus three is five."),
        ("what is to plus three", "Two plus three is five."),  # "two" misheard as a homophone
        ("what's 12 times 4", "Twelve times four is forty-eight."),
        ("what is twenty-five minus thirty", "Twenty-five minus thirty is minus five."),
        ("seven divided by two", "Seven divided by two is three point five."),
        ("how much is 6*7", "Six times seven is forty-two."),
        ("add one hundred and five and two", "One hundred five plus two is one hundred seven."),
        ("subtract three from ten", "Ten minus three is seven."),
        ("what is nine divided by zero", "I can't divide by zero."),
        ("What is seven times eight?", "Seven times eight is fifty-six."),
    ],
)
def test_replies_arithmetic(transcript: str, answer: str) -> None:
    reply = engine().reply(transcript)
    assert (reply.rule, reply.text) == ("arithmetic", answer)


def test_number_words() -> None:
    assert number_words(0) == "zero"
    assert number_words(15) == "fifteen"
    assert number_words(1_234_567) == (
        "one million two hundred thirty-four thousand five hundred sixty-seven"
    )
    assert number_words(-0.25) == "minus zero point two five"


def test_replies_preview_changes_nothing() -> None:
    replies = engine()
    loud = replace(CALM, loudness_dbfs=-8.0)
    preview = replies.preview("what is two plus three", loud)
    assert (preview.rule, preview.tone) == ("arithmetic", "raised_voice")
    assert replies.last_reply is None
    assert replies.reply("repeat that").text == "I haven't said anything yet."
    # The baseline did not learn from the preview: a calm voice still gets no reaction.
    assert [replies.reply("what time is it", CALM).tone for _ in range(2)] == [None, None]
    assert replies.reply("what is two plus three", loud) == preview


def test_replies_repeat_says_the_last_reply_again() -> None:
    replies = engine()
    assert replies.reply("repeat that").text == "I haven't said anything yet."
    answer = replies.reply("what is two plus three")
    assert replies.reply("repeat that").text == answer.text
    assert replies.reply("say that again").text == answer.text
    assert replies.last_reply == answer


def test_replies_stop_is_a_short_acknowledgement() -> None:
    reply = engine("You are Ada, a cheerful assistant.").reply(
        "stop", replace(CALM, loudness_dbfs=-6)
    )
    assert (reply.rule, reply.text, reply.tone) == ("stop", "Okay.", "raised_voice")


def test_replies_leave_the_rest_to_the_language_model() -> None:
    assert engine().reply("").text == "Sorry, I didn't catch that."
    replies = engine()
    tired = replace(CALM, loudness_dbfs=-36.0, speaking_rate_sps=1.8)
    left = replies.reply("flibbertigibbet", tired)
    assert (left.rule, left.text, left.tone) == ("llm", "", "tired")
    assert replies.last_reply is None  # what the model says is remembered by the caller
    replies.remember(Reply("Bless you!", "llm"))
    assert replies.reply("repeat that").text == "Bless you!"
    assert replies.tone_note("tired", "en") == TONE_NOTES["en"]["tired"]
    assert replies.tone_note(None, "en") == ""
    fast = replace(CALM, speaking_rate_sps=7.0)
    assert engine().reply("tell me about paris", fast).tone == "fast"


@pytest.mark.parametrize(
    ("instructions", "transcript", "text"),
    [
        ("You are Max, a formal butler.", "what time is it", "It is 3:05 PM."),
        ("You are Max, a formal butler.", "stop", "Certainly."),
        ("Be brief.", "what is two plus three", "Five."),
        ("Be brief.", "what time is it", "3:05 PM."),
        ("You are cheerful.", "what is two plus three", "Two plus three is five!"),
    ],
)
def test_replies_follow_the_persona_tone(instructions: str, transcript: str, text: str) -> None:
    assert engine(instructions).reply(transcript).text == text


def test_replies_loud_voice_gets_a_calm_acknowledgement() -> None:
    reply = engine().reply("what time is it", replace(CALM, loudness_dbfs=-8.0))
    assert reply.rule == "time"
    assert reply.tone == "raised_voice"
    assert reply.text == "I hear you, let's take this calmly. It's 3:05 PM."


def test_replies_voice_raised_above_the_speakers_usual_level() -> None:
    replies = engine()
    for _ in range(3):
        assert replies.reply("hello", CALM).tone is None
    raised = replace(CALM, loudness_dbfs=-16.0, pitch_median_hz=170.0)
    assert replies.reply("hello", raised).tone == "raised_voice"
    assert replies.reply("hello", raised).text == ""  # the model hears it in the tone note


def test_replies_slow_quiet_speech_sounds_tired() -> None:
    tired = replace(CALM, loudness_dbfs=-36.0, speaking_rate_sps=1.8)
    reply = engine().reply("what time is it", tired)
    assert (reply.rule, reply.tone) == ("time", "tired")
    assert reply.text.startswith("You sound tired.")
    # Slow alone or quiet alone is not enough.
    assert engine().reply("hello", replace(CALM, speaking_rate_sps=1.8)).tone is None
    assert engine().reply("hello", replace(CALM, loudness_dbfs=-36.0)).tone is None


def test_replies_ignore_tone_of_very_short_utterances() -> None:
    blip = replace(CALM, voiced_s=0.1, loudness_dbfs=-6.0)
    assert engine().reply("hello", blip).tone is None


def test_replies_in_chinese() -> None:
    replies = engine("你是小艾。")
    assert replies.persona.language == "zh"
    greeting = replies.greeting()
    assert (greeting.rule, greeting.text) == ("greeting", "你好！我是小艾。有什么可以帮你的吗？")
    assert replies.reply("").text == "抱歉，我没听清。"
    assert replies.reply("天空为什么是蓝色的").rule == "llm"
    assert replies.reply("你好").rule == "llm"
    assert replies.reply("what time is it").text == "现在是15点5分。"  # Chinese persona
    assert replies.reply("现在几点").text == "现在是15点5分。"
    assert replies.reply("3加5等于几").text == "3加5等于8。"
    assert replies.reply("再说一遍").text == "3加5等于8。"
    loud = replies.reply("现在几点", replace(CALM, loudness_dbfs=-6.0))
    assert loud.text.startswith("别着急，我在听。")
    assert replies.tone_note("tired", "zh") == TONE_NOTES["zh"]["tired"]
