"""OpenAI Realtime, GA dialect: nested session, `output_audio` event names."""

from __future__ import annotations

from .dialect import BackendConfig, Event, bearer, with_model_query, without_none

URL = "wss://api.openai.com/v1/realtime"
DEFAULT_MODEL = "gpt-realtime"
PCM_24K = {"type": "audio/pcm", "rate": 24000}
SILENCE_DURATION_MS = 500
PREFIX_PADDING_MS = 300

# GA name -> the beta name the relay handles.
GA_EVENT_NAMES = {
    "response.output_audio.delta": "response.audio.delta",
    "response.output_audio.done": "response.audio.done",
    "response.output_audio_transcript.delta": "response.audio_transcript.delta",
    "response.output_audio_transcript.done": "response.audio_transcript.done",
    "response.output_text.delta": "response.text.delta",
    "response.output_text.done": "response.text.done",
    "conversation.item.added": "conversation.item.created",
}


class OpenAIDialect:
    name = "openai"
    cumulative_input_transcripts = False

    def connect_url(self, config: BackendConfig) -> str:
        return with_model_query(config.url or URL, config.model or DEFAULT_MODEL)

    def headers(self, config: BackendConfig) -> dict[str, str]:
        return bearer(config)

    def silence_ms(self, config: BackendConfig) -> int:
        return config.silence_duration_ms or SILENCE_DURATION_MS

    def session_update(self, config: BackendConfig) -> Event:
        turn_detection = {
            "type": "server_vad",
            "threshold": 0.5,
            "prefix_padding_ms": config.prefix_padding_ms or PREFIX_PADDING_MS,
            "silence_duration_ms": self.silence_ms(config),
            "create_response": True,
            "interrupt_response": True,
        }
        session = without_none(
            {
                "type": "realtime",
                "output_modalities": ["audio"],
                "instructions": config.instructions,
                "audio": {
                    "input": {
                        "format": PCM_24K,
                        "transcription": {"model": "gpt-4o-mini-transcribe"},
                        "turn_detection": turn_detection,
                    },
                    "output": without_none({"format": PCM_24K, "voice": config.voice}),
                },
            }
        )
        return {"type": "session.update", "session": session}

    def normalize(self, event: Event) -> Event:
        name = GA_EVENT_NAMES.get(event.get("type", ""))
        if name is not None:
            event["type"] = name
        return event
