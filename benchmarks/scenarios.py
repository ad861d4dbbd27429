"""Benchmark scenarios: which servers are measured, with which local model and which probe.

`loopback` measures what the relay adds to a bare aiortc echo (the floor): the backend answers
every append at once, so any latency or CPU above the floor is the relay's own. `assistant`
talks to the offline assistant model through the relay: peers ask spoken questions (the
`speech` probe, benchmarks/speech_probe.py: six everyday turns from
benchmarks.assistant_latency.QUESTIONS, most answered by the language model) and the latency
is voice to voice, from the end of a question to the first reply audio heard; CPU per session
gives the relay's sessions per core in a real conversation (mostly silence on its playout).
The breakdown behind it (hangover, recognition, the model's first token, first audio) is
measured at the protocol level by benchmarks/assistant_latency.py.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    name: str
    server: str  # "echo": benchmarks.echo_server; "relay": voice-relay serve (+ backend process)
    variant: str = ""  # relay: optimizations undone (benchmarks.variants); echo: "stock" level
    tree: str = ""  # relay: run the `voice-relay serve` of another checkout (before/after)
    workers: int = 1  # relay: VOICE_RELAY_WORKERS; above 1 the server is not pinned to a core


@dataclass(frozen=True)
class Scenario:
    name: str
    backend_model: str
    targets: tuple[Target, ...]
    probe: str  # what load_client sends and measures: "markers" or "speech"
    sessions: tuple[int, ...]
    quick_sessions: tuple[int, ...]
    baseline: str | None = None  # the target subtracted from the others
    hold_s: float = 12.0  # measured seconds per N and target


# Optimizations `benchmarks.variants` can undo in a relay process, to measure each one.
RELAY_VARIANTS = (
    "aiortc-encoder",
    "aiortc-decoder",
    "aiortc-jitter-buffer",
    "paced-after-underrun",
    "no-catch-up",
)

FLOOR = Target("floor", "echo")
RELAY = Target("relay", "relay")
# One core's relay (front and sessions in one process, pinned) against a front with two media
# workers on both cores (docs/performance.md, "Every core").
RELAY_1W = Target("relay-1w", "relay")
RELAY_2W = Target("relay-2w", "relay", workers=2)

SCENARIOS: dict[str, Scenario] = {
    "loopback": Scenario(
        name="loopback",
        backend_model="loopback",
        targets=(FLOOR, RELAY),
        probe="markers",
        sessions=(1, 10, 20, 30, 40),
        quick_sessions=(1, 3),
        baseline="floor",
    ),
    "workers": Scenario(
        name="workers",
        backend_model="loopback",
        targets=(RELAY_1W, RELAY_2W),
        probe="markers",
        sessions=(10, 20, 30, 40),
        quick_sessions=(1, 4),
    ),
    "assistant": Scenario(
        name="assistant",
        backend_model="assistant",
        targets=(RELAY,),
        probe="speech",
        sessions=(1, 2, 4),
        quick_sessions=(1,),
        hold_s=60.0,  # ~7 s per turn: question, a model's reply of a few sentences, a pause
    ),
}
