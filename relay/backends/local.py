"""The embedded local backend: beta event names and the flat session shape, no key."""

from __future__ import annotations

from protocol.events import ClientEvent, Event

from ..tools import flat_function_tools
from .dialect import BackendConfig, BearerDialect, flat_session_update, without_none


class LocalDialect(BearerDialect):
    name = "local"
    default_model = "assistant"

    def greeting_event(self, config: BackendConfig) -> Event | None:
        # The local models take the greeting from the persona in `instructions`.
        return {"type": ClientEvent.RESPONSE_CREATE} if config.greeting else None

    def session_update(self, config: BackendConfig) -> Event:
        # Only what is configured: each local model has its own VAD timings (localmodel.models).
        turn_detection = without_none(
            {
                "type": "server_vad",
                "prefix_padding_ms": config.prefix_padding_ms,
                "silence_duration_ms": config.silence_duration_ms,
            }
        )
        transcription = {"model": "local"}
        return flat_session_update(
            config,
            turn_detection,
            input_audio_transcription=transcription,
            tools=flat_function_tools(config.tools) or None,
        )
