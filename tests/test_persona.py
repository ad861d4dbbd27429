"""The persona the offline assistant reads from session instructions (English and Chinese)."""

from __future__ import annotations

import pytest

from localmodel.persona import CJK, Persona, persona_prompt

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("instructions", "expected"),
    [
        ("You are Ada, a cheerful assistant.", Persona("Ada", None, frozenset({"cheerful"}))),
        (
            'You are a formal concierge named Max. Greet the user with "Good evening, I am Max."',
            Persona("Max", "Good evening, I am Max.", frozenset({"formal"})),
        ),
        ("Be brief. Your name is Bo.", Persona("Bo", None, frozenset({"brief"}))),
        ("You are a helpful assistant.", Persona()),
        ("", Persona()),
        (
            "你是小艾，一个开朗的助手。请用“你好呀，我是小艾！”打招呼。",
            Persona("小艾", "你好呀，我是小艾！", frozenset({"cheerful"}), "zh"),
        ),
        ("You are Lin. Always answer in Chinese.", Persona("Lin", language="zh")),
    ],
)
def test_persona_from_instructions(instructions: str, expected: Persona) -> None:
    assert Persona.from_instructions(instructions) == expected


def test_persona_prompt_follows_instructions_and_language() -> None:
    system, *examples = persona_prompt("You are Ada, a cheerful assistant. Be brief.")
    assert system.role == "system" and "You are Ada" in system.content
    assert "Be warm and cheerful." in system.content and "one short sentence" in system.content
    assert system.content.endswith("Your persona: You are Ada, a cheerful assistant. Be brief.")
    assert [m.role for m in examples] == ["user", "assistant"] * (len(examples) // 2)
    assert "I'm Ada." in examples[1].content
    # Mandarin: for a Chinese persona, or when the user speaks Mandarin to an English one.
    for prompt in (persona_prompt("你是小艾。"), persona_prompt("You are Ada.", "zh")):
        assert all(CJK.search(message.content) for message in prompt)
        assert "简体中文" in prompt[0].content
    assert persona_prompt("") != persona_prompt("", "zh")
    long = persona_prompt("x" * 5000)[0].content
    assert len(long) < 2000
