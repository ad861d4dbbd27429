"""Benchmark results: per-phase summaries, the comparison with the floor, and the printed table."""

from __future__ import annotations

import math
from typing import Any

Phase = dict[str, Any]


def pct(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))], 2)


def dist(values: list[float], qs: tuple[float, ...] = (0.5, 0.95)) -> dict[str, float | None]:
    return {f"p{round(q * 100)}": pct(values, q) for q in qs}


def share(part: float, whole: float) -> float | None:
    return round(100 * part / whole, 3) if whole else None


def drift_ms(series: list[float]) -> float:
    """Median of a session's last quarter of latencies minus its first quarter's."""
    quarter = len(series) // 4
    if quarter == 0:
        return 0.0
    first, last = sorted(series[:quarter]), sorted(series[-quarter:])
    return last[len(last) // 2] - first[len(first) // 2]


def summarize_phase(
    target: str, server: str, n: int, peers: list[dict[str, Any]], m: dict[str, Any]
) -> Phase:
    ok = [p for p in peers if p["ok"]]
    latencies = [x for p in ok for x in p["latencies_ms"]]
    sent = sum(p["markers_sent"] for p in ok)
    found = sum(p["markers_found"] for p in ok)
    late = sum(p["markers_late"] for p in ok)
    frames = sum(p["frames_expected"] for p in ok)
    frames_missing = sum(max(0, p["frames_expected"] - p["frames_received"]) for p in ok)
    drifts = [drift_ms(p["latencies_ms"]) for p in ok if len(p["latencies_ms"]) >= 8]
    asked = sum(p.get("turns_asked", 0) for p in ok)
    answered = sum(p.get("turns_answered", 0) for p in ok)
    rss = m["server_rss_mb"]
    return {
        "target": target,
        "server": server,
        "sessions": n,
        "sessions_ok": len(ok),
        "errors": sorted({p["error"] for p in peers if p["error"]})[:5],
        "setup_ms": {
            "offer_answer": dist([p["offer_answer_ms"] for p in peers if p["offer_answer_ms"]]),
            "connected": dist([p["connect_ms"] for p in ok if p["connect_ms"]]),
            "listening": dist([p["listening_ms"] for p in ok if p.get("listening_ms")]),
            "first_audio": dist([p["first_audio_ms"] for p in ok if p["first_audio_ms"]]),
        },
        "latency_ms": {
            **dist(latencies, (0.5, 0.95, 0.99)),
            "count": len(latencies),
            "drift": round(sum(drifts) / len(drifts), 2) if drifts else None,
            "per_session_p50": sorted(pct(p["latencies_ms"], 0.5) or 0.0 for p in ok),
        },
        "continuity": {
            "markers_sent": sent,
            "markers_lost_pct": share(sent - found, sent),
            "markers_late_pct": share(late, sent),
            "lost_or_late_pct": share(sent - found + late, sent),
            "frames_expected": frames,
            "frames_lost_pct": share(frames_missing, frames),
            "frames_late_pct": share(sum(p["frames_late"] for p in ok), frames),
            "turns_asked": asked,
            "turns_unanswered_pct": share(asked - answered, asked),
        },
        "cpu": {
            "server_pct": m["server_cpu_pct"],
            "server_idle_pct": m["server_idle_cpu_pct"],
            "server_pct_per_session": round(m["server_cpu_pct"] / n, 3),
            "server_front_pct": m.get("server_front_cpu_pct"),
            "client_pct": m["client_cpu_pct"],
            "client_pct_max_proc": m["client_cpu_pct_max_proc"],
            "client_procs": m["client_procs"],
            "client_send_lag_ms_p99": m["send_lag_ms_p99"],
            "backend_pct": m.get("backend_cpu_pct"),
        },
        "memory": {
            "server_rss_mb": rss,
            "server_rss_mb_per_session": round((rss["during"] - rss["before"]) / n, 2),
            "server_open_files": m["server_open_files"],
        },
        "noise": m["noise"],
        "attempts": m.get("attempts", 1),
        "window_s": m["window_s"],
    }


def compare(phases: list[Phase], baseline: str | None) -> list[dict[str, Any]]:
    """Per N: each target minus the baseline (latency percentiles) and over it (CPU ratio).

    Percentiles of two independent runs are subtracted: with per-marker pairing impossible,
    p99(relay) - p99(floor) is what the relay adds to the tail, not a percentile of a difference.
    """
    rows = []
    for n in sorted({p["sessions"] for p in phases}):
        at_n = {p["target"]: p for p in phases if p["sessions"] == n}
        base = at_n.get(baseline) if baseline else None
        for name, phase in at_n.items():
            if base is None or name == baseline:
                continue
            row: dict[str, Any] = {"sessions": n, "target": name, "over": baseline}
            for q in ("p50", "p95", "p99"):
                a, b = phase["latency_ms"].get(q), base["latency_ms"].get(q)
                row[f"added_latency_ms_{q}"] = None if a is None or b is None else round(a - b, 2)
            a, b = phase["cpu"]["server_pct_per_session"], base["cpu"]["server_pct_per_session"]
            row["cpu_per_session_ratio"] = round(a / b, 2) if b > 0 else None
            rows.append(row)
    return rows


def lost_pct(continuity: dict[str, Any]) -> float | None:
    """Markers lost, or for the speech probe questions left unanswered."""
    if continuity.get("turns_asked"):
        return continuity["turns_unanswered_pct"]  # type: ignore[no-any-return]
    return continuity["markers_lost_pct"]  # type: ignore[no-any-return]


def fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float | int) else str(value)


def pair(d: dict[str, Any], *keys: str) -> str:
    return "/".join(fmt(d.get(k)) for k in keys)


def table(phases: list[Phase], summary: list[dict[str, Any]]) -> str:
    w = max([6] + [len(p["target"]) for p in phases])
    head = (
        f"{'N':>3} {'server':<{w}} {'ok':>3} {'answer':>9} {'connect':>9} {'1st audio':>9} "
        f"{'latency p50/95/99':>17} {'lost%':>6} {'late%':>6} {'CPU%':>5} {'/sess':>5} "
        f"{'MB/s':>5} {'cli%':>4} {'be%':>4} {'other%':>6}"
    )
    lines = [head, "-" * len(head)]
    for p in phases:
        s, c, cont = p["setup_ms"], p["cpu"], p["continuity"]
        lines.append(
            f"{p['sessions']:>3} {p['target']:<{w}} {p['sessions_ok']:>3} "
            f"{pair(s['offer_answer'], 'p50', 'p95'):>9} {pair(s['connected'], 'p50', 'p95'):>9} "
            f"{pair(s['first_audio'], 'p50', 'p95'):>9} "
            f"{pair(p['latency_ms'], 'p50', 'p95', 'p99'):>17} "
            f"{fmt(lost_pct(cont), 2):>6} {fmt(cont['markers_late_pct'], 2):>6} "
            f"{fmt(c['server_pct']):>5} {fmt(c['server_pct_per_session'], 2):>5} "
            f"{fmt(p['memory']['server_rss_mb_per_session'], 1):>5} {fmt(c['client_pct']):>4} "
            f"{fmt(c['backend_pct']):>4} {fmt(p['noise'].get('others_cpu_pct')):>6}"
        )
    if summary:
        lines += [
            "",
            f"{'N':>3} {'server':<{w}} {'added latency over floor, ms':>30}   CPU/session vs floor",
            f"{'':>3} {'':<{w}} {'p50':>10}{'p95':>10}{'p99':>10}",
        ]
        for r in summary:
            lines.append(
                f"{r['sessions']:>3} {r['target']:<{w}} {fmt(r['added_latency_ms_p50'], 1):>10}"
                f"{fmt(r['added_latency_ms_p95'], 1):>10}{fmt(r['added_latency_ms_p99'], 1):>10}"
                f"   {fmt(r['cpu_per_session_ratio'], 2)}x"
            )
    lines.append(
        "\nanswer/connect/1st audio: ms p50/p95 from POST; latency: marker sent -> heard back, ms"
        "\n(speech probe: end of a question -> first reply audio heard, ms);"
        "\nlost/late: % of markers (speech probe: lost = questions not answered within 15 s);"
        "\nCPU%: of one core; MB/s: server RSS MB per session;"
        "\ncli%/be%: load clients/backend CPU; other%: CPU used by other processes (noise)"
    )
    return "\n".join(lines)
