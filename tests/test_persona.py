"""The persona the offline assistant reads from session instructions (English and Chinese)."""

from __future__ import annotations

import pytest

from localmodel.persona import Persona

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
