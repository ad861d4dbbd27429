"""OpenAI Realtime, GA dialect: nested session, `output_audio` event names."""

from __future__ import annotations

from protocol.events import GA_PCM_FORMAT, ClientEvent, Event, Naming

from ..tools import flat_function_tools
from .dialect import BackendConfig, BearerDialect, without_none

URL = "wss://api.openai.com/v1/realtime"


class OpenAIDialect(BearerDialect):
    name = "openai"
    naming = Naming.GA
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
                        "format": GA_PCM_FORMAT,
                        "transcription": {"model": "gpt-4o-mini-transcribe"},
                        "turn_detection": turn_detection,
                    },
                    "output": without_none({"format": GA_PCM_FORMAT, "voice": config.voice}),
                },
                "tools": flat_function_tools(config.tools) or None,  # GA's flat function shape
            }
        )
        return {"type": ClientEvent.SESSION_UPDATE, "session": session}
