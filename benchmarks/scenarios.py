"""Benchmark scenarios: which servers are measured, with which local model and which probe.

`loopback` measures what the relay adds to a bare aiortc echo (the floor): the backend answers
every append at once, so any latency or CPU above the floor is the relay's own. `assistant`
talks to the offline assistant model through the relay: peers ask spoken questions (the
`speech` probe, benchmarks/speech_probe.py) and the latency is voice to voice, from the end of
a question to the first reply audio heard; CPU per session gives the relay's sessions per core
in a real conversation (mostly silence on its playout).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    name: str
    server: str  # "echo": benchmarks.echo_server; "relay": voice-relay serve (+ backend process)
    variant: str = ""  # relay: optimizations undone (benchmarks.variants); echo: "stock" level
    tree: str = ""  # relay: run the `voice-relay serve` of another checkout (before/after)


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
    "assistant": Scenario(
        name="assistant",
        backend_model="assistant",
        targets=(RELAY,),
        probe="speech",
        sessions=(1, 2, 4),
        quick_sessions=(1,),
        hold_s=40.0,  # ~5 s per turn: question, reply, a pause
    ),
}
