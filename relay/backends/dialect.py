"""What differs between realtime APIs: URL, headers, session.update shape, server event names."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

Event = dict[str, Any]


@dataclass(frozen=True)
class BackendConfig:
    """Where and how to reach one realtime model. `api_key` never appears in repr or logs."""

    dialect: str
    url: str
    model: str
    api_key: str | None = field(default=None, repr=False)
    voice: str | None = None
    instructions: str | None = None
    silence_duration_ms: int | None = None
    prefix_padding_ms: int | None = None


class Dialect(Protocol):
    name: str
    # StepFun repeats the whole user transcript in each delta; OpenAI sends increments.
    cumulative_input_transcripts: bool

    def connect_url(self, config: BackendConfig) -> str: ...

    def headers(self, config: BackendConfig) -> dict[str, str]: ...

    def session_update(self, config: BackendConfig) -> Event: ...

    def silence_ms(self, config: BackendConfig) -> int:
        """Silence the server VAD waits for before it declares the end of a turn."""
        ...

    def normalize(self, event: Event) -> Event:
        """Rename server events to the beta names the relay handles."""
        ...


def with_model_query(url: str, model: str) -> str:
    if "model=" in url:
        return url
    return f"{url}{'&' if '?' in url else '?'}model={model}"


def bearer(config: BackendConfig) -> dict[str, str]:
    return {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}


def without_none(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}
