"""The effective session configuration and how each naming describes it (session.created/updated).

Audio is always pcm16, 24 kHz, mono, little-endian. `session_update` validates and merges the
client's changes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection

from protocol.events import GA_PCM_FORMAT, Event, Naming


def response_modalities(listed: Collection[str]) -> tuple[str, ...]:
    """What a response may produce: text and audio when "audio" is listed, else text only."""
    return ("text", "audio") if "audio" in listed else ("text",)


@dataclasses.dataclass(frozen=True)
class TurnDetection:
    """Server VAD settings (`turn_detection`)."""

    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500
    create_response: bool = True
    interrupt_response: bool = True

    def to_json(self) -> Event:
        return {"type": "server_vad", **dataclasses.asdict(self)}


@dataclasses.dataclass(frozen=True)
class SessionConfig:
    """The session as the client last set it."""

    id: str
    model: str
    modalities: tuple[str, ...] = ("text", "audio")
    instructions: str = ""
    voice: str = "local"
    turn_detection: TurnDetection | None = TurnDetection()
    input_audio_transcription: Event | None = None
    tools: tuple[Event, ...] = ()
    tool_choice: str = "auto"
    temperature: float = 0.8
    max_response_output_tokens: int | str = "inf"

    def to_json(self, naming: Naming) -> Event:
        if naming is Naming.GA:
            return self._to_ga()
        return {
            "id": self.id,
            "object": "realtime.session",
            "model": self.model,
            "modalities": list(self.modalities),
            "instructions": self.instructions,
            "voice": self.voice,
            "input_audio_format": "pcm16",
            "output_audio_format": "pcm16",
            "input_audio_transcription": self.input_audio_transcription,
            "turn_detection": self._turn_detection_json(),
            "tools": list(self.tools),
            "tool_choice": self.tool_choice,
            "temperature": self.temperature,
            "max_response_output_tokens": self.max_response_output_tokens,
        }

    def _turn_detection_json(self) -> Event | None:
        return None if self.turn_detection is None else self.turn_detection.to_json()

    def _to_ga(self) -> Event:
        return {
            "type": "realtime",
            "object": "realtime.session",
            "id": self.id,
            "model": self.model,
            "output_modalities": ["audio"] if "audio" in self.modalities else ["text"],
            "instructions": self.instructions,
            "audio": {
                "input": {
                    "format": dict(GA_PCM_FORMAT),
                    "transcription": self.input_audio_transcription,
                    "turn_detection": self._turn_detection_json(),
                    "noise_reduction": None,
                },
                "output": {"format": dict(GA_PCM_FORMAT), "voice": self.voice, "speed": 1.0},
            },
            "tools": list(self.tools),
            "tool_choice": self.tool_choice,
            "max_output_tokens": self.max_response_output_tokens,
        }
