"""The processes a benchmark starts: servers under test, the local backend, load clients, py-spy."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .scenarios import Target

ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"
READY_TIMEOUT_S = 60.0


@dataclass
class Server:
    name: str
    kind: str  # "relay", "echo" or "backend"
    process: asyncio.subprocess.Process
    url: str

    @property
    def pid(self) -> int:
        return self.process.pid


@dataclass
class Fleet:
    servers: dict[str, Server] = field(default_factory=dict)  # by target name
    backend: Server | None = None

    def check_alive(self) -> None:
        for server in [*self.servers.values(), *([self.backend] if self.backend else [])]:
            if server.process.returncode is not None:
                raise RuntimeError(
                    f"{server.name} ({server.kind}) exited with status {server.process.returncode}"
                )

    def pids(self) -> dict[str, int]:
        pids = {name: s.pid for name, s in self.servers.items()}
        if self.backend is not None:
            pids["backend"] = self.backend.pid
        return pids


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def pinned(cmd: list[str], cpu: int | str | None) -> list[str]:
    """`cmd` on core `cpu` (or a taskset list such as "0-1"); None: where this process runs."""
    return cmd if cpu is None else ["taskset", "-c", str(cpu), *cmd]


def every_core() -> str:
    return f"0-{(os.cpu_count() or 1) - 1}"


def child_env(root: Path = ROOT, **extra: str) -> dict[str, str]:
    """The environment of a child that imports the checkout at `root` first."""
    env = dict(os.environ)
    env.update(
        VOICE_RELAY_ICE_ADDRESSES=LOOPBACK,
        VOICE_RELAY_LOG_LEVEL="warning",
        PYTHONUNBUFFERED="1",
        PYTHONPATH=os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH")) if p),
    )
    env.update(extra)
    return env


async def spawn(
    cmd: list[str], env: dict[str, str], cwd: Path = ROOT, **kwargs: object
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(*cmd, cwd=cwd, env=env, **kwargs)  # type: ignore[arg-type]


async def wait_listening(server: Server, port: int) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        if server.process.returncode is not None:
            raise RuntimeError(f"{server.name} exited with status {server.process.returncode}")
        try:
            _, writer = await asyncio.open_connection(LOOPBACK, port)
            writer.close()
            await writer.wait_closed()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{server.name} did not listen on port {port}") from None
            await asyncio.sleep(0.1)


async def start_fleet(
    targets: tuple[Target, ...],
    backend_model: str,
    server_cpu: int | None,
    backend_cpu: int | str | None,
    relay_env: dict[str, str],
    data_dir: Path,
) -> Fleet:
    """One server process per target, plus one `voice-relay backend` the relays share."""
    fleet = Fleet()
    python = sys.executable
    try:
        if any(t.server == "relay" for t in targets):
            port = free_port()
            cmd = [python, "-m", "web.cli", "backend", "--port", str(port)]
            # The relays' connections are outside clients here: measure past its limit too.
            env = child_env(VOICE_RELAY_MAX_SESSIONS="100000")
            process = await spawn(pinned(cmd, backend_cpu), env)
            url = f"ws://{LOOPBACK}:{port}/v1/realtime"
            fleet.backend = Server("backend", "backend", process, url)
            await wait_listening(fleet.backend, port)
        for target in targets:
            port = free_port()
            root = Path(target.tree) if target.tree else ROOT
            if target.server == "relay":
                assert fleet.backend is not None
                env = child_env(
                    root,
                    VOICE_RELAY_BACKEND="local",
                    VOICE_RELAY_MODEL=backend_model,
                    VOICE_RELAY_BACKEND_URL=fleet.backend.url,
                    # Measure past the admission limits; every peer comes from 127.0.0.1.
                    VOICE_RELAY_MAX_SESSIONS="100000",
                    VOICE_RELAY_SESSIONS_PER_IP_PER_MINUTE="100000",
                    VOICE_RELAY_DATA_DIR=str(data_dir),
                    # --relay-env may set the workers too (then the server stays pinned).
                    **{"VOICE_RELAY_WORKERS": str(target.workers), **relay_env},
                )
                serve = ["web.cli", "serve"]
                if target.variant:
                    serve = ["benchmarks.variants", target.variant]
                cmd = [python, "-m", *serve, "--host", LOOPBACK, "--port", str(port)]
            else:
                env = child_env()
                cmd = [python, "-m", "benchmarks.echo_server", "--port", str(port)]
                if target.variant == "stock":
                    cmd.append("--stock-audio-level")
            # Media workers spread over every core (not only the clients' core this process
            # runs on, which children would inherit); one process stays on the server's core.
            cpu: int | str | None = server_cpu if target.workers == 1 else None
            if cpu is None and server_cpu is not None:
                cpu = every_core()
            process = await spawn(pinned(cmd, cpu), env, cwd=root)
            server = Server(target.name, target.server, process, f"http://{LOOPBACK}:{port}")
            fleet.servers[target.name] = server
            await wait_listening(server, port)
    except BaseException:
        await stop_fleet(fleet)
        raise
    return fleet


async def stop(process: asyncio.subprocess.Process, timeout_s: float = 10.0) -> None:
    if process.returncode is None:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), timeout_s)
        except TimeoutError:
            process.kill()
            await process.wait()


async def stop_fleet(fleet: Fleet) -> None:
    await asyncio.gather(*(stop(s.process) for s in fleet.servers.values()))
    if fleet.backend is not None:
        await stop(fleet.backend.process)


async def start_profiler(
    out: Path, pid: int, seconds: float, cpu: int | None
) -> asyncio.subprocess.Process:
    """py-spy samples of the threads holding the GIL, as collapsed stacks (flamegraph input)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    cmd = [
        py_spy, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))),
        "--rate", "200", "--format", "raw", "--nonblocking", "--threads", "--gil",
        "--output", str(out),
    ]  # fmt: skip
    return await spawn(
        pinned(cmd, cpu),
        child_env(),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
