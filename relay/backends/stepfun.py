"""StepFun Realtime: OpenAI beta event names, flat session, StepFun's VAD knobs."""

from __future__ import annotations

from .dialect import BackendConfig, Event, bearer, with_model_query, without_none

URL = "wss://api.stepfun.com/v1/realtime"
DEFAULT_MODEL = "stepaudio-2.5-realtime"
# Press coverage calls StepAudio 2.5 Realtime `step-2.5-realtime`; the API id differs.
MODEL_ALIASES = {"step-2.5-realtime": DEFAULT_MODEL}
# StepFun's documented default (100 ms) cuts people off mid-sentence; 500 ms matches OpenAI's.
SILENCE_DURATION_MS = 500
PREFIX_PADDING_MS = 500
ENERGY_AWAKENESS_THRESHOLD = 2500


class StepFunDialect:
    name = "stepfun"
    cumulative_input_transcripts = True

    def connect_url(self, config: BackendConfig) -> str:
        model = MODEL_ALIASES.get(config.model, config.model)
        return with_model_query(config.url or URL, model)

    def headers(self, config: BackendConfig) -> dict[str, str]:
        return bearer(config)

    def silence_ms(self, config: BackendConfig) -> int:
        return config.silence_duration_ms or SILENCE_DURATION_MS

    def session_update(self, config: BackendConfig) -> Event:
        turn_detection = {
            "type": "server_vad",
            "prefix_padding_ms": config.prefix_padding_ms or PREFIX_PADDING_MS,
            "silence_duration_ms": self.silence_ms(config),
            "energy_awakeness_threshold": ENERGY_AWAKENESS_THRESHOLD,
        }
        session = without_none(
            {
                "modalities": ["text", "audio"],
                "instructions": config.instructions,
                "voice": config.voice,
                "input_audio_format": "pcm16",
                "output_audio_format": "pcm16",
                "turn_detection": turn_detection,
            }
        )
        return {"type": "session.update", "session": session}

    def normalize(self, event: Event) -> Event:
        return event
