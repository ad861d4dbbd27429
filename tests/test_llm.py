"""The assistant's language model (Qwen2.5-Coder-0.5B-Instruct on llama.cpp), for real.

Pins: the GGUF joined from its six wheels matches its pinned sha256 and a tampered copy is
never loaded; the persona's prompt stays in the KV cache, so a later turn in that persona
evaluates only its new tokens, also after another persona used the model (restored from the
LRU), with the same reply as when it was evaluated from scratch; generation stops within a
token of its stop flag and frees the model for the next session; replies are short and in the
language of the prompt.
"""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import pytest

pytest.importorskip("llama_cpp")

from localmodel import llm  # noqa: E402
from localmodel.llm import Generation, Message, shared_language_model  # noqa: E402
from localmodel.persona import CJK, persona_prompt  # noqa: E402
from localmodel.weights import MODEL_DIR_ENV, WeightsError, packaged, sha256_of, verified  # noqa: E402

pytestmark = pytest.mark.integration


def generate(
    persona: tuple[Message, ...], messages: list[Message], stop: threading.Event | None = None
) -> tuple[str, Generation]:
    stats: list[Generation] = []
    model = shared_language_model()
    text = "".join(
        model.generate(persona, messages, stop or threading.Event(), report=stats.append)
    )
    return text, stats[0]


def test_llm_gguf_parts_and_joined_file_match_their_pins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for part in llm.GGUF_PARTS:
        assert sha256_of(packaged(part)) == part.sha256
    good = llm.model_path()
    assert sha256_of(good) == llm.GGUF_SHA256
    # A tampered copy in the model cache is refused, and joined again from the checked parts.
    monkeypatch.setenv(MODEL_DIR_ENV, str(tmp_path))
    tampered = tmp_path / llm.GGUF_NAME
    data = bytearray(good.read_bytes())
    data[len(data) // 2] ^= 0xFF
    tampered.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="sha256"):
        verified(tampered, llm.GGUF_SHA256)
    assert llm.model_path() == tampered
    assert sha256_of(tampered) == llm.GGUF_SHA256


def test_llm_persona_stays_in_the_kv_cache() -> None:
    # Names no other prompt of this process has used: the first turn is really cold.
    unique = uuid.uuid4().hex[:6]
    ada = persona_prompt(f"You are Zed{unique}, a helpful assistant.")
    max_ = persona_prompt(f"You are Quill{unique}, a formal butler.")
    ask = [Message("user", "Name one colour of the rainbow.")]
    cold_text, cold = generate(ada, ask)
    # The persona was evaluated (only the ChatML start may be left from an earlier prompt).
    assert cold.evaluated_tokens > cold.prompt_tokens - 10 and not cold.persona_restored
    warm_text, warm = generate(ada, ask)
    assert warm.evaluated_tokens == 1 and warm_text == cold_text
    generate(max_, ask)  # another persona takes the context
    _, follow_up = generate(ada, [*ask, Message("assistant", cold_text), *ask])
    # Restored, not evaluated: only the conversation after the persona is.
    assert follow_up.persona_restored and follow_up.persona_tokens > 100
    assert follow_up.evaluated_tokens == follow_up.prompt_tokens - follow_up.persona_tokens
    restored_text, restored = generate(max_, ask)
    generate(ada, ask)
    again_text, again = generate(max_, ask)
    assert again.persona_restored and again_text == restored_text


def test_llm_stops_within_a_token_and_frees_the_model() -> None:
    persona = persona_prompt("")
    stop = threading.Event()
    model = shared_language_model()
    stats: list[Generation] = []
    pieces = model.generate(
        persona,
        [Message("user", "Tell me a long story about a dragon.")],
        stop,
        report=stats.append,
    )
    assert next(pieces)
    stop.set()
    assert list(pieces) == []
    assert stats[0].stopped and stats[0].tokens == 1
    # A stop set while waiting for the model gives up without generating.
    waiting = threading.Event()
    waiting.set()
    assert list(model.generate(persona, [Message("user", "Hi")], waiting)) == []
    text, _ = generate(persona, [Message("user", "Say hello.")])
    assert text


def test_llm_answers_briefly_in_the_prompts_language() -> None:
    english, stats = generate(persona_prompt(""), [Message("user", "Tell me a joke.")])
    assert english and not CJK.search(english) and stats.tokens < llm.MAX_REPLY_TOKENS
    chinese, _ = generate(persona_prompt("", "zh"), [Message("user", "给我讲个笑话吧。")])
    assert len(CJK.findall(chinese)) > 0.5 * len(chinese.replace(" ", ""))
