"""Settings: defaults that depend on what the process runs.

- the model defaults to the backend dialect's own default;
- the session maximum defaults to the measured capacity: fewer sessions when the offline
  assistant runs in this process, the relay's capacity otherwise, the configured value if set.
"""

from __future__ import annotations

from typing import Any

import pytest

from web.settings import DEFAULT_MAX_EMBEDDED_ASSISTANT_SESSIONS, DEFAULT_MAX_SESSIONS, Settings

pytestmark = pytest.mark.unit


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("values", "model"),
    [
        ({"backend": "local"}, "assistant"),
        ({"backend": "stepfun", "stepfun_api_key": "k"}, "stepaudio-2.5-realtime"),
        ({"backend": "openai", "openai_api_key": "k"}, "gpt-realtime"),
        ({"backend": "openai", "openai_api_key": "k", "model": "m"}, "m"),
    ],
)
def test_model_defaults_to_the_dialects(values: dict[str, Any], model: str) -> None:
    assert settings(**values).resolved_model == model


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"backend": "local"}, DEFAULT_MAX_EMBEDDED_ASSISTANT_SESSIONS),
        ({"backend": "local", "model": "echo"}, DEFAULT_MAX_SESSIONS),
        (
            {"backend": "local", "backend_url": "ws://127.0.0.1:8001/v1/realtime"},
            DEFAULT_MAX_SESSIONS,
        ),
        ({"backend": "stepfun", "stepfun_api_key": "k"}, DEFAULT_MAX_SESSIONS),
        ({"backend": "local", "max_sessions": 9}, 9),
        ({"backend": "stepfun", "stepfun_api_key": "k", "max_sessions": 40}, 40),
    ],
)
def test_max_sessions_defaults_to_the_measured_capacity(
    values: dict[str, Any], expected: int
) -> None:
    assert settings(**values).resolved_max_sessions == expected
    assert DEFAULT_MAX_EMBEDDED_ASSISTANT_SESSIONS < DEFAULT_MAX_SESSIONS


def test_max_sessions_must_be_positive() -> None:
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        settings(backend="local", max_sessions=0)
