"""CPU time, resident memory and open files of a process, read from /proc."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class ProcSample:
    t: float  # time.monotonic()
    cpu_s: float  # user + system time of every thread, exited ones included
    rss_bytes: int
    open_files: int


def sample(pid: int) -> ProcSample:
    with open(f"/proc/{pid}/stat") as f:
        # The command name may hold spaces: fields start after its closing parenthesis.
        fields = f.read().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])
    with open(f"/proc/{pid}/statm") as f:
        rss_pages = int(f.read().split()[1])
    try:
        open_files = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        open_files = -1
    cpu_s = (utime + stime) / CLOCK_TICKS
    return ProcSample(time.monotonic(), cpu_s, rss_pages * PAGE_BYTES, open_files)


def descendants(pid: int) -> list[int]:
    """The children of `pid`, theirs, and so on (a server's media workers)."""
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        try:
            with open(f"/proc/{parent}/task/{parent}/children") as f:
                children = [int(child) for child in f.read().split()]
        except OSError:
            continue
        found += children
        todo += children
    return found


def sample_tree(pid: int) -> ProcSample:
    """`pid` and its descendants as one: CPU, memory and files added up."""
    own = sample(pid)
    cpu_s, rss, files = own.cpu_s, own.rss_bytes, own.open_files
    for child in descendants(pid):
        try:
            part = sample(child)
        except (FileNotFoundError, ProcessLookupError):
            continue  # exited meanwhile
        cpu_s, rss, files = cpu_s + part.cpu_s, rss + part.rss_bytes, files + part.open_files
    return ProcSample(own.t, cpu_s, rss, files)


def sample_all(pids: dict[str, int], trees: frozenset[str] = frozenset()) -> dict[str, ProcSample]:
    """Samples of the processes still running, by name; those in `trees` with their children."""
    samples = {}
    for name, pid in pids.items():
        try:
            samples[name] = sample_tree(pid) if name in trees else sample(pid)
        except (FileNotFoundError, ProcessLookupError):
            pass
    return samples


def cpu_percent(before: ProcSample, after: ProcSample) -> float:
    """Share of one core used between the two samples, in percent."""
    elapsed = after.t - before.t
    return 100.0 * (after.cpu_s - before.cpu_s) / elapsed if elapsed > 0 else 0.0


def machine_busy_s() -> float:
    """CPU time all processes of the machine used so far (every core, idle and iowait left out)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def cpu_pressure_us() -> int:
    """Total time some runnable task waited for a CPU (/proc/pressure/cpu), or 0 if unknown."""
    try:
        with open("/proc/pressure/cpu") as f:
            return int(f.readline().split()[-1].split("=")[1])
    except (OSError, IndexError, ValueError):
        return 0
