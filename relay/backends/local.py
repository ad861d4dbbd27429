"""The embedded local backend: beta event names and the flat session shape, no key."""

from __future__ import annotations

from .dialect import BackendConfig, BearerDialect, Event, without_none


class LocalDialect(BearerDialect):
    name = "local"
    default_model = "assistant"
    # The assistant's own default: its Silero VAD needs less hangover than an energy VAD.
    silence_duration_ms = 400

    def greeting_event(self, config: BackendConfig) -> Event | None:
        # The local models take the greeting from the persona in `instructions`.
        return {"type": "response.create"} if config.greeting else None

    def session_update(self, config: BackendConfig) -> Event:
        turn_detection = {
            "type": "server_vad",
            "threshold": 0.5,
            "prefix_padding_ms": self.padding_ms(config),
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
