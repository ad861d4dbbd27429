"""Rule replies: each rule, arithmetic, persona styles, tone reactions, Chinese."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import pytest

from localmodel.numbers import number_words
from localmodel.replies import ReplyEngine
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
    assert engine("You are Ada.").reply("hello there").text == "Hello! I'm Ada. How can I help?"
    custom = engine('You are Max. Greet the user with "Good evening, I am Max."')
    assert custom.reply("good morning").text == "Good evening, I am Max."
    assert custom.greeting().text == "Good evening, I am Max."
    assert custom.greeting().rule == "greeting"


@pytest.mark.parametrize(
    ("transcript", "rule"),
    [
        ("hello", "greeting"),
        ("hi ada", "greeting"),
        ("hello how are you", "how_are_you"),
        ("oh how're you", "how_are_you"),
        ("what is your name", "name"),
        ("thank you very much", "thanks"),
        ("goodbye", "goodbye"),
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
        ("", "not_understood"),
        ("the purple elephant sings", "not_understood"),
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
        ("what is to plus three", "Two plus three is five."),  # as pocketsphinx hears it
        ("what's 12 times 4", "Twelve times four is forty-eight."),
        ("what is twenty-five minus thirty", "Twenty-five minus thirty is minus five."),
        ("seven divided by two", "Seven divided by two is three point five."),
        ("how much is 6*7", "Six times seven is forty-two."),
        ("add one hundred and five and two", "One hundred five plus two is one hundred seven."),
        ("subtract three from ten", "Ten minus three is seven."),
        ("what is nine divided by zero", "I can't divide by zero."),
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
    assert [replies.reply("hello", CALM).tone for _ in range(2)] == [None, None]
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


def test_replies_not_understood() -> None:
    assert engine().reply("").text == "Sorry, I didn't catch that."
    assert engine().reply("flibbertigibbet").text == "Sorry, I didn't understand that."


@pytest.mark.parametrize(
    ("instructions", "transcript", "text"),
    [
        ("You are Max, a formal butler.", "what time is it", "It is 3:05 PM."),
        (
            "You are Max, a formal butler.",
            "hello",
            "Good day. My name is Max. How may I assist you?",
        ),
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
    greeting = replies.reply("你好")
    assert (greeting.rule, greeting.text) == ("greeting", "你好！我是小艾。有什么可以帮你的吗？")
    assert replies.reply("").text == "抱歉，我没听清。"
    assert replies.reply("天空为什么是蓝色的").text == "抱歉，我没听懂。"
    assert replies.reply("hello").rule == "greeting"  # English transcript, Chinese answer
    assert replies.reply("现在几点").text == "现在是15点5分。"
    assert replies.reply("3加5等于几").text == "3加5等于8。"
    assert replies.reply("再说一遍").text == "3加5等于8。"
    loud = replies.reply("你好", replace(CALM, loudness_dbfs=-6.0))
    assert loud.text.startswith("别着急，我在听。")
