"""StepFun Realtime: OpenAI beta event names, flat session, StepFun's VAD knobs and models.

What each model takes comes from StepFun's realtime API reference (docs/backends.md lists the
sources): the voices it documents, the closing line step-audio-2-mini needs in its
instructions, and which models think aloud (`response.thinking.*`, shown in the debug view only).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from protocol.events import ClientEvent, Event

from ..tools import stepfun_tools
from .dialect import (
    BackendConfig,
    BearerDialect,
    flat_session_update,
    greeting_instructions,
)

# Keys from platform.stepfun.com work only on .com, keys from platform.stepfun.ai only on .ai.
URLS = {"cn": "wss://api.stepfun.com/v1/realtime", "intl": "wss://api.stepfun.ai/v1/realtime"}
URL = URLS["cn"]
REGIONS = tuple(URLS)
# Press coverage calls StepAudio 2.5 Realtime `step-2.5-realtime`; the API id differs.
MODEL_ALIASES = {"step-2.5-realtime": "stepaudio-2.5-realtime"}
ENERGY_AWAKENESS_THRESHOLD = 2500  # StepFun's documented default (range 0–5000)
# The API reference's session.update sample and the Step Plan quick start use this voice.
REFERENCE_VOICE = "linjiajiejie"
FEMALE, MALE = "qingchunshaonv", "wenrounansheng"
# step-audio-2-mini: "add 请使用默认女声/男声与用户交流 at the end of instructions".
MINI_VOICE_LINES = {FEMALE: "请使用默认女声与用户交流", MALE: "请使用默认男声与用户交流"}


@dataclass(frozen=True)
class StepFunModel:
    voices: tuple[str, ...]  # documented voice ids, the default first; cloned ids work too
    intl: bool = False  # on the international platform's realtime reference
    thinking: bool = False  # streams response.thinking.* before it speaks
    voice_lines: dict[str, str] = field(default_factory=dict)  # voice -> required last line
    note: str | None = None


MODELS: dict[str, StepFunModel] = {
    "stepaudio-2.5-realtime": StepFunModel((REFERENCE_VOICE,)),
    "stepaudio-3-realtime-preview": StepFunModel(
        (REFERENCE_VOICE,), note="a preview model: its behaviour may change without notice"
    ),
    "step-1o-audio": StepFunModel((REFERENCE_VOICE,), intl=True),
    "step-audio-2": StepFunModel(
        (FEMALE, MALE, "elegantgentle-female", "livelybreezy-female"), intl=True
    ),
    "step-audio-2-mini": StepFunModel(
        (FEMALE, MALE),
        intl=True,
        voice_lines=MINI_VOICE_LINES,
        note="takes only qingchunshaonv or wenrounansheng, and needs the matching line "
        "at the end of its instructions (the relay appends it)",
    ),
    "step-audio-r1.1": StepFunModel((FEMALE, MALE), intl=True, thinking=True),
    "step-audio-r1.5": StepFunModel((FEMALE, MALE), thinking=True),
}
THINKING_NOTE = (
    "a thinking model: it streams its reasoning (response.thinking.*) before it speaks, so "
    "answers start later; the reasoning is shown only in the page's debug view"
)


def model_info(model: str) -> StepFunModel | None:
    return MODELS.get(model)


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

    def connect_url(self, config: BackendConfig) -> str:
        if not config.url:
            config = dataclasses.replace(config, url=URLS.get(config.region, URL))
        return super().connect_url(config)

    def voice(self, config: BackendConfig) -> str:
        """The configured voice, else the model's documented default (StepFun needs one)."""
        if config.voice:
            return config.voice
        info = model_info(self.model_id(config))
        return info.voices[0] if info is not None else REFERENCE_VOICE

    def instructions(self, config: BackendConfig, text: str | None) -> str | None:
        """`text` with the closing line the model requires for the voice, if it needs one."""
        info = model_info(self.model_id(config))
        line = info.voice_lines.get(self.voice(config)) if info is not None else None
        if line is None or (text and text.rstrip().endswith(line)):
            return text
        return f"{text.rstrip()}\n{line}" if text else line

    def session_update(self, config: BackendConfig) -> Event:
        threshold = config.energy_awakeness_threshold
        turn_detection = {
            "type": "server_vad",
            "prefix_padding_ms": self.padding_ms(config),
            "silence_duration_ms": self.silence_ms(config),
            "energy_awakeness_threshold": (
                ENERGY_AWAKENESS_THRESHOLD if threshold is None else threshold
            ),
        }
        resolved = dataclasses.replace(
            config,
            voice=self.voice(config),
            instructions=self.instructions(config, config.instructions),
        )
        tools = stepfun_tools(config.tools) or None  # relay.tools: StepFun's nested shapes
        return flat_session_update(resolved, turn_detection, tools=tools)

    def greeting_event(self, config: BackendConfig) -> Event | None:
        # StepFun's developer guide: a response.create whose instructions ask for the line.
        # A response's instructions replace the session's, so the persona goes first.
        if not config.greeting:
            return None
        ask = greeting_instructions(config.greeting)
        asked = f"{config.instructions}\n\n{ask}" if config.instructions else ask
        response = {"instructions": self.instructions(config, asked)}
        return {"type": ClientEvent.RESPONSE_CREATE, "response": response}

    def notes(self, config: BackendConfig) -> list[str]:
        model = self.model_id(config)
        info = model_info(model)
        if info is None:
            return [
                f"model {model!r} is not one StepFun documents for realtime; "
                f"its voices are unknown (sending {self.voice(config)!r})"
            ]
        notes = [note for note in (info.note, THINKING_NOTE if info.thinking else None) if note]
        if config.region == "intl" and not info.intl and not config.url:
            notes.append("it is not listed on the international platform (api.stepfun.ai)")
        voice = self.voice(config)
        if info.voice_lines and voice not in info.voice_lines:
            notes.append(f"voice {voice!r} is not one it takes: {', '.join(info.voice_lines)}")
        return [f"StepFun model {model!r}: {note}" for note in notes]
