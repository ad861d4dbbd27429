"""The embedded local backend: beta event names and the flat session shape, no key."""

from __future__ import annotations

from .dialect import BackendConfig, Event, with_model_query, without_none

SILENCE_DURATION_MS = 500
PREFIX_PADDING_MS = 300


class LocalDialect:
    name = "local"
    cumulative_input_transcripts = False

    def connect_url(self, config: BackendConfig) -> str:
        return with_model_query(config.url, config.model)

    def headers(self, config: BackendConfig) -> dict[str, str]:
        return {}

    def silence_ms(self, config: BackendConfig) -> int:
        return config.silence_duration_ms or SILENCE_DURATION_MS

    def session_update(self, config: BackendConfig) -> Event:
        turn_detection = {
            "type": "server_vad",
            "threshold": 0.5,
            "prefix_padding_ms": config.prefix_padding_ms or PREFIX_PADDING_MS,
            "silence_duration_ms": self.silence_ms(config),
        }
        session = without_none(
            {
                "modalities": ["text", "audio"],
                "instructions": config.instructions,
                "voice": config.voice,
                "input_audio_format": "pcm16",
                "output_audio_format": "pcm16",
                "input_audio_transcription": {"model": "local"},
                "turn_detection": turn_detection,
            }
        )
        return {"type": "session.update", "session": session}

    def normalize(self, event: Event) -> Event:
        return event
