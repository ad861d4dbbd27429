"""The relay benchmark (benchmarks/) runs end to end and reports sane fields.

- markers survive an Opus round trip: every burst is found, numbered and timed, lost ones count
  as lost (unit);
- each relay variant turns off exactly its one MediaOptions field (unit);
- `python -m benchmarks.relay_bench --quick` starts the floor echo, `voice-relay backend` and
  the relay, drives real peers through them, stops by itself and writes JSON whose fields are
  present and plausible. No timing thresholds: this machine is shared and noisy;
- `--scenario assistant --quick` asks the offline assistant spoken questions through the relay
  and reports voice-to-voice latency for the questions answered.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aiortc.codecs.opus import OpusDecoder
from aiortc.jitterbuffer import JitterFrame

from benchmarks.markers import CYCLE_FRAMES, PERIOD_FRAMES, MarkerDetector, MarkerLog, encode_cycle
from benchmarks.scenarios import RELAY_VARIANTS
from benchmarks.variants import VARIANTS, media_options
from relay import MediaOptions

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.unit
def test_markers_are_found_numbered_and_timed_after_opus() -> None:
    packets = encode_cycle()
    log = MarkerLog()
    detector = MarkerDetector(log)
    decoder = OpusDecoder()
    offset, latency_s, dropped = 23, 0.120, {62, 63}  # frames 62-63 carry one whole burst
    for i in range(2 * CYCLE_FRAMES):
        position = offset + i
        log.record(position, i * 0.02)
        if i in dropped:
            continue
        for frame in decoder.decode(JitterFrame(packets[position % CYCLE_FRAMES], i * 960)):
            detector.feed(frame, i * 0.02 + latency_s)  # type: ignore[arg-type]
    found = [a.marker for a in detector.arrivals]
    sent = sorted(log.sent)
    lost = (offset + 62) // PERIOD_FRAMES
    assert lost not in found
    expected = [m for m in sent if m != lost]
    assert found in (expected, expected[:-1])  # the last burst may be cut by the end
    for arrival in detector.arrivals:
        assert 0.120 <= arrival.latency_s < 0.130  # + Opus look-ahead, to the sample


@pytest.mark.unit
def test_each_relay_variant_turns_off_one_media_option() -> None:
    product = dataclasses.asdict(MediaOptions())
    assert all(product.values())  # every option on: the product
    for name in RELAY_VARIANTS:
        changed = dataclasses.asdict(media_options(name))
        assert [k for k in product if changed[k] != product[k]] == list(VARIANTS[name])
    both = media_options("aiortc-encoder+no-catch-up")
    assert (both.opus_packets, both.catch_up, both.loop_decoder) == (False, False, True)


def run_bench(out: Path, *args: str) -> tuple[str, dict[str, Any]]:
    """`python -m benchmarks.relay_bench ARGS --out OUT`: its stdout and its JSON."""
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks.relay_bench", *args, "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result: dict[str, Any] = json.loads(out.read_text())
    return run.stdout, result


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_bench_quick_mode_writes_sane_json(tmp_path: Path) -> None:
    stdout, result = run_bench(tmp_path / "bench.json", "--quick", "--hold", "2")
    assert "added latency" in stdout
    assert result["meta"]["scenario"] == "loopback"
    phases = {(p["target"], p["sessions"]): p for p in result["phases"]}
    assert set(phases) == {("floor", 1), ("relay", 1), ("floor", 3), ("relay", 3)}
    for (_, n), phase in phases.items():
        assert phase["sessions_ok"] == n, phase["errors"]
        assert phase["setup_ms"]["offer_answer"]["p50"] > 0
        assert phase["setup_ms"]["connected"]["p50"] >= phase["setup_ms"]["offer_answer"]["p50"]
        assert phase["setup_ms"]["first_audio"]["p50"] > 0
        latency = phase["latency_ms"]
        assert latency["count"] > 0 and 0 < latency["p50"] <= latency["p95"] <= latency["p99"]
        continuity = phase["continuity"]
        assert continuity["markers_sent"] >= n * 10
        assert 0 <= continuity["markers_lost_pct"] <= 100
        assert phase["cpu"]["server_pct"] > 0 and phase["cpu"]["client_pct"] > 0
        assert phase["memory"]["server_rss_mb"]["during"] > 10
    assert phases[("relay", 3)]["cpu"]["backend_pct"] is not None
    summary = {(r["target"], r["sessions"]): r for r in result["summary"]}
    assert set(summary) == {("relay", 1), ("relay", 3)}
    for row in summary.values():
        assert row["added_latency_ms_p50"] is not None and row["cpu_per_session_ratio"] > 0


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_bench_assistant_scenario_times_spoken_questions(tmp_path: Path) -> None:
    _, result = run_bench(
        tmp_path / "assistant.json", "--scenario", "assistant", "--quick", "--hold", "14"
    )
    assert result["meta"]["scenario"] == "assistant"
    (phase,) = result["phases"]
    assert (phase["target"], phase["sessions"], phase["sessions_ok"]) == ("relay", 1, 1)
    assert phase["continuity"]["turns_asked"] >= 1
    assert phase["continuity"]["turns_unanswered_pct"] < 100  # the assistant answered
    latency = phase["latency_ms"]
    # Voice to voice: at least the model's 400 ms end-of-turn silence, at most its timeout.
    assert latency["count"] >= 1 and 400 < latency["p50"] < 15_000
    assert result["summary"] == []  # no floor to compare with
