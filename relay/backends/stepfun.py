"""StepFun Realtime: OpenAI beta event names, flat session, StepFun's VAD knobs."""

from __future__ import annotations

from protocol.events import Event

from .dialect import BackendConfig, BearerDialect, flat_session_update

URL = "wss://api.stepfun.com/v1/realtime"
# Press coverage calls StepAudio 2.5 Realtime `step-2.5-realtime`; the API id differs.
MODEL_ALIASES = {"step-2.5-realtime": "stepaudio-2.5-realtime"}
ENERGY_AWAKENESS_THRESHOLD = 2500


class StepFunDialect(BearerDialect):
    name = "stepfun"
    cumulative_input_transcripts = True
    default_url = URL
    default_model = "stepaudio-2.5-realtime"
    # StepFun's documented default (100 ms) cuts people off mid-sentence; 500 ms matches OpenAI.
    silence_duration_ms = 500
    prefix_padding_ms = 500

    def model_id(self, config: BackendConfig) -> str:
        model = super().model_id(config)
        return MODEL_ALIASES.get(model, model)

    def session_update(self, config: BackendConfig) -> Event:
        turn_detection = {
            "type": "server_vad",
            "prefix_padding_ms": self.padding_ms(config),
            "silence_duration_ms": self.silence_ms(config),
            "energy_awakeness_threshold": ENERGY_AWAKENESS_THRESHOLD,
        }
        return flat_session_update(config, turn_detection)
