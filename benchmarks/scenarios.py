"""Benchmark scenarios: which servers are measured, with which local model and which probe.

`loopback` measures what the relay adds to a bare aiortc echo (the floor): the backend answers
every append at once, so any latency or CPU above the floor is the relay's own. An `assistant`
scenario (voice-to-voice latency from the end of speech to the first reply audio, sessions per
core) will be another entry here, with `targets=(RELAY,)`, `backend_model="assistant"` and a
probe that speaks utterances and times replies instead of mirroring markers.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    name: str
    server: str  # "echo": benchmarks.echo_server; "relay": voice-relay serve (+ backend process)
    variant: str = ""  # relay: optimizations undone (benchmarks.variants); echo: "stock" level


@dataclass(frozen=True)
class Scenario:
    name: str
    backend_model: str
    targets: tuple[Target, ...]
    probe: str  # what load_client sends and measures: "markers"
    sessions: tuple[int, ...]
    quick_sessions: tuple[int, ...]
    baseline: str | None = None  # the target subtracted from the others


# Optimizations `benchmarks.variants` can undo in a relay process, to measure each one.
RELAY_VARIANTS = ("aiortc-encoder", "aiortc-decoder", "paced-after-underrun", "no-catch-up")

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
}
