"""A loopback-only network namespace for a benchmark: no packet it sends can leave the machine."""

from __future__ import annotations

import os
import shutil
import sys

IN_NETNS_ENV = "VOICE_RELAY_BENCH_IN_NETNS"  # set once re-run inside, so it never nests


def in_loopback_only_netns() -> bool:
    with open("/proc/net/dev") as f:  # per network namespace, unlike /sys/class/net
        names = [line.split(":")[0].strip() for line in f.readlines()[2:]]
    return names == ["lo"]


def enter_loopback_only(module: str) -> None:
    """Unless already in one, re-run `python -m module ARGV` in a new network namespace with
    only `lo`, brought up (this process is replaced)."""
    if os.environ.get(IN_NETNS_ENV) or in_loopback_only_netns():
        return
    unshare = shutil.which("unshare")
    if unshare is None or shutil.which("ip") is None:
        sys.exit(f"{module}: needs unshare (util-linux) and ip (iproute2), or --no-netns")
    flags = "-n" if os.geteuid() == 0 else "-rn"
    script = 'ip link set lo up && exec "$@"'
    os.environ[IN_NETNS_ENV] = "1"
    os.execv(
        unshare,
        [unshare, flags, "sh", "-c", script, "sh", sys.executable, "-m", module] + sys.argv[1:],
    )
