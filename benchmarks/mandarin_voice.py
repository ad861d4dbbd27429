"""The Mandarin voice (Kokoro + misaki) and first-clause latency of the assistant's speaker.

    .venv/bin/python -m benchmarks.mandarin_voice [--voices jf_gongitsune,jm_kumo]
        [--speeds 0.85,0.9,1.0] [--latency-only] [--repeats 5]

Per voice and speed: the character error rate of Whisper base (localmodel/whisper.py, the
assistant's own recognizer) hearing tests/voice_check.MANDARIN_REPLIES spoken by that voice, and
the real-time factor (synthesis CPU time / audio time; wall time in brackets). Then the
first-clause latency of `Speaker.speak_clauses` (clause handed in → its audio out, warm) for
English (piper) and Mandarin (Kokoro), and the RSS Kokoro adds to a process. Prints the load
(load average, CPU pressure) the numbers were taken under. Needs the `assistant` extra; run it
in `unshare -n` to show that nothing is downloaded.
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time

from benchmarks.procstat import cpu_pressure_us
from localmodel import kokoro
from localmodel.speaker import Speaker
from tests.voice_check import MANDARIN_REPLIES, heard, mandarin_error_rate

FIRST_CLAUSES = {
    "en": ("Sure.", "Hello, I am Ada.", "Sure, I can help you with that right away."),
    "zh": ("好的。", "我是你的语音助手，", "好的，我马上帮你查一下今天的天气。"),
}


def say(line: str = "") -> None:
    print(line, flush=True)  # noqa: T201


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class Load:
    """Load average and CPU pressure over a stretch of the run."""

    def __init__(self) -> None:
        self.started, self.pressure = time.monotonic(), cpu_pressure_us()

    def __str__(self) -> str:
        elapsed = time.monotonic() - self.started
        pressure = (cpu_pressure_us() - self.pressure) / 1e6 / max(elapsed, 1e-9)
        return f"load average {os.getloadavg()[0]:.1f}, CPU pressure {100 * pressure:.0f} %"


def voice_table(voices: list[str], speeds: list[float]) -> None:
    say("| voice | speed | character errors | real-time factor, CPU (wall) | misheard |")
    say("|---|---|---|---|---|")
    for voice in voices:
        for speed in speeds:
            load = Load()
            synthesizer = kokoro.KokoroSynthesizer(voice, speed)
            cpu = wall = audio_s = 0.0
            hypotheses = []
            for text in MANDARIN_REPLIES:
                started, started_cpu = time.perf_counter(), time.thread_time()
                pcm = b"".join(synthesizer.synthesize(text))
                cpu += time.thread_time() - started_cpu
                wall += time.perf_counter() - started
                audio_s += len(pcm) / 48_000
                hypotheses.append(heard(pcm))
            rate = mandarin_error_rate(MANDARIN_REPLIES, hypotheses)
            wrong = [
                f"{r}→{h}"
                for r, h in zip(MANDARIN_REPLIES, hypotheses, strict=True)
                if mandarin_error_rate([r], [h]) > 0
            ]
            say(
                f"| {voice} | {speed} | {100 * rate:.1f} % | {cpu / audio_s:.2f} "
                f"({wall / audio_s:.2f}) | {len(wrong)}: {' '.join(wrong)} |",
            )
            say(f"<!-- {load} -->")


def first_clause_latency(repeats: int) -> None:
    speaker = Speaker()
    stop = threading.Event()
    for clauses in FIRST_CLAUSES.values():  # warm both voices up
        for _ in speaker.speak_clauses(clauses[:1], "alloy", stop):
            pass
    load = Load()
    say("| voice | first clause | audio (s) | first audio, median / max (ms) | CPU (ms) |")
    say("|---|---|---|---|---|")
    for language, clauses in FIRST_CLAUSES.items():
        for clause in clauses:
            waits, cpus, audio_s = [], [], 0.0
            for _ in range(repeats):
                handed: list[float] = []

                def given(clause: str = clause, handed: list[float] = handed) -> object:
                    handed.append(time.perf_counter())
                    yield clause

                started_cpu = time.thread_time()
                pieces = speaker.speak_clauses(given(), "alloy", stop)
                _, pcm = next(pieces)
                waits.append(time.perf_counter() - handed[0])
                cpus.append(time.thread_time() - started_cpu)
                audio_s = (len(pcm) + sum(len(rest) for _, rest in pieces)) / 48_000
            name = "piper (joe)" if language == "en" else f"Kokoro ({kokoro.VOICE})"
            say(
                f"| {name} | {clause} | {audio_s:.1f} | {1000 * statistics.median(waits):.0f} "
                f"/ {1000 * max(waits):.0f} | {1000 * statistics.median(cpus):.0f} |",
            )
    say(f"<!-- {load} -->")
    speaker.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--voices", default=kokoro.VOICE)
    parser.add_argument("--speeds", default=str(kokoro.SPEED))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--latency-only", action="store_true")
    parser.add_argument("--threads", type=int, default=kokoro.THREADS, help="Kokoro's")
    args = parser.parse_args()
    kokoro.THREADS = args.threads
    before = rss_mb()
    started = time.perf_counter()
    kokoro.warm_up()
    say(
        f"Kokoro loaded and warm in {time.perf_counter() - started:.1f} s, "
        f"RSS +{rss_mb() - before:.0f} MB ({rss_mb():.0f} MB in all)\n",
    )
    if not args.latency_only:
        voice_table(args.voices.split(","), [float(s) for s in args.speeds.split(",")])
        say()
    first_clause_latency(args.repeats)


if __name__ == "__main__":
    main()
