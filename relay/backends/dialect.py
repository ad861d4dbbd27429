"""What differs between realtime APIs: URL, headers, session.update shape, server event names."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from protocol.events import ClientEvent, Event, Naming, beta_name

from ..tools import Tool


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
    greeting: str | None = None  # spoken first, before the person says anything
    tools: tuple[Tool, ...] = ()  # what the model may call (relay.tools); never from a visitor
    region: str = "cn"  # StepFun: the platform that issued the key (cn: stepfun.com, intl: .ai)
    temperature: float | None = None
    max_output_tokens: int | None = None
    energy_awakeness_threshold: int | None = None  # StepFun's VAD wake-up energy, 0–5000


class Dialect(Protocol):
    name: str
    naming: Naming
    default_model: str  # the model a session gets when none is configured
    # StepFun repeats the whole user transcript in each delta; OpenAI sends increments.
    cumulative_input_transcripts: bool

    def connect_url(self, config: BackendConfig) -> str: ...

    def headers(self, config: BackendConfig) -> dict[str, str]: ...

    def session_update(self, config: BackendConfig) -> Event: ...

    def silence_ms(self, config: BackendConfig) -> int:
        """The VAD silence that ends a turn when the server reports none in its session."""
        ...

    def normalize(self, event: Event) -> Event:
        """Rename server events to the beta names the relay handles."""
        ...

    def greeting_event(self, config: BackendConfig) -> Event | None:
        """The event that makes the model speak `config.greeting` first, if there is one."""
        ...

    def notes(self, config: BackendConfig) -> list[str]:
        """What an operator should know about this configuration, logged once per process."""
        ...


class BearerDialect:
    """Defaults shared by the dialects: bearer auth, `?model=`, VAD timings, beta event names."""

    name = "base"
    naming = Naming.BETA
    cumulative_input_transcripts = False
    default_url = ""
    default_model = ""
    silence_duration_ms = 500  # OpenAI's documented default, which the local server follows
    prefix_padding_ms = 300

    def model_id(self, config: BackendConfig) -> str:
        return config.model or self.default_model

    def connect_url(self, config: BackendConfig) -> str:
        url = config.url or self.default_url
        if "model=" in url:
            return url
        return f"{url}{'&' if '?' in url else '?'}model={self.model_id(config)}"

    def headers(self, config: BackendConfig) -> dict[str, str]:
        return {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}

    def silence_ms(self, config: BackendConfig) -> int:
        return config.silence_duration_ms or self.silence_duration_ms

    def padding_ms(self, config: BackendConfig) -> int:
        return config.prefix_padding_ms or self.prefix_padding_ms

    def normalize(self, event: Event) -> Event:
        if self.naming is Naming.GA and isinstance(event.get("type"), str):
            event["type"] = beta_name(event["type"])
        return event

    def greeting_event(self, config: BackendConfig) -> Event | None:
        # StepFun's advice for making the model speak first: ask for the line verbatim.
        if not config.greeting:
            return None
        instructions = greeting_instructions(config.greeting)
        return {"type": ClientEvent.RESPONSE_CREATE, "response": {"instructions": instructions}}

    def notes(self, config: BackendConfig) -> list[str]:
        return []


def greeting_instructions(greeting: str) -> str:
    return f"Greet the user by saying exactly this, and nothing else: {greeting}"


def sampling(config: BackendConfig) -> dict[str, Any]:
    """The flat (beta, StepFun) names of the sampling knobs that are configured."""
    return without_none(
        {
            "temperature": config.temperature,
            "max_response_output_tokens": config.max_output_tokens,
        }
    )


def reported_silence_ms(session: Event) -> int | None:
    """The VAD silence in a session the server reported (flat beta or nested GA shape)."""
    audio = session.get("audio")
    nested = audio.get("input") if isinstance(audio, dict) else None
    shape = nested if isinstance(nested, dict) else session
    detection = shape.get("turn_detection")
    silence = detection.get("silence_duration_ms") if isinstance(detection, dict) else None
    if isinstance(silence, int | float) and not isinstance(silence, bool):
        return int(silence)
    return None


def without_none(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def flat_session_update(
    config: BackendConfig, turn_detection: dict[str, Any], **extra: Any
) -> Event:
    """`session.update` in the flat shape of OpenAI's beta, StepFun and the local backend."""
    session = without_none(
        {
            "modalities": ["text", "audio"],
            "instructions": config.instructions,
            "voice": config.voice,
            "input_audio_format": "pcm16",
            "output_audio_format": "pcm16",
            **sampling(config),
            **extra,
            "turn_detection": turn_detection,
        }
    )
    return {"type": ClientEvent.SESSION_UPDATE, "session": session}
