"""OpenAI Realtime, GA dialect: nested session, `output_audio` event names."""

from __future__ import annotations

from .dialect import BackendConfig, BearerDialect, Event, without_none

URL = "wss://api.openai.com/v1/realtime"
PCM_24K = {"type": "audio/pcm", "rate": 24000}

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


class OpenAIDialect(BearerDialect):
    name = "openai"
    default_url = URL
    default_model = "gpt-realtime"

    def session_update(self, config: BackendConfig) -> Event:
        turn_detection = {
            "type": "server_vad",
            "threshold": 0.5,
            "prefix_padding_ms": self.padding_ms(config),
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
