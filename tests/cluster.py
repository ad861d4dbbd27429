"""A cluster on loopback for tests: a real redis-server, a real nginx in front, and
`voice-relay serve` instances as child processes (tests/test_cluster.py, tests/test_redis_state.py).

Nothing is written outside a temporary directory: nginx runs with `-p DIR -e DIR/error.log` and
its pid, logs and temp paths inside DIR; redis-server keeps nothing on disk.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiortc import RTCSessionDescription

from benchmarks.fleet import Server, child_env, free_port, spawn, stop, wait_listening
from protocol.audio import PCM_RATE_HZ

from .conftest import wait_until
from .media import LOOPBACK, ClientPeer, SpeechTrack
from .speech import tone

ADMIN_TOKEN = "admin-token-0123456789"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
SECRET_KEY = "cluster-secret-key-0123456789abcdef"  # shared by every instance, as documented
READY_TIMEOUT_S = 60.0
HAVE_CLUSTER_TOOLS = bool(shutil.which("redis-server") and shutil.which("nginx"))


def wait_port(port: int, process: subprocess.Popen[bytes], name: str) -> None:
    for _ in range(500):
        with socket.socket() as probe:
            if probe.connect_ex((LOOPBACK, port)) == 0:
                return
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited at start with status {process.returncode}")
        time.sleep(0.02)
    raise RuntimeError(f"{name} did not listen on port {port}")


class RedisServer:
    """redis-server on a free port of 127.0.0.1, without persistence."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://{LOOPBACK}:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--bind",
                LOOPBACK,
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
            ],  # fmt: skip
            stdout=subprocess.DEVNULL,
        )
        wait_port(self.port, self.process, "redis-server")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


NGINX_CONF = """\
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
{user}
events {{ worker_connections 512; }}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
    upstream voice_relay {{
{servers}
    }}
    server {{
        listen {host}:{port};
        client_max_body_size 256k;
        client_body_buffer_size 256k;
        location / {{
            proxy_pass http://voice_relay;
            proxy_http_version 1.1;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            # A 503 (full, draining) is answered before any session exists: retry the POST on
            # the next instance. max_fails=0 above: a 503 must not take an instance out.
            proxy_next_upstream error timeout http_503 non_idempotent;
            proxy_connect_timeout 2s;
            proxy_read_timeout 1h;
        }}
    }}
}}
"""


class Nginx:
    """nginx as the load balancer, round robin over `upstream_ports`, on a free port."""

    def __init__(self, directory: Path, upstream_ports: list[int]) -> None:
        self.dir = directory
        self.port = free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        directory.mkdir(parents=True, exist_ok=True)
        servers = "\n".join(
            f"        server {LOOPBACK}:{port} max_fails=0;" for port in upstream_ports
        )
        # As root, workers would switch to `nobody`, which cannot enter the temp directory.
        user = "user root;" if os.geteuid() == 0 else ""
        conf = NGINX_CONF.format(
            dir=directory, user=user, servers=servers, host=LOOPBACK, port=self.port
        )
        (directory / "nginx.conf").write_text(conf)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "nginx",
                "-p",
                str(self.dir),
                "-e",
                str(self.dir / "error.log"),
                "-c",
                str(self.dir / "nginx.conf"),
                "-g",
                "daemon off;",
            ],  # fmt: skip
            stderr=subprocess.PIPE,
        )
        wait_port(self.port, self.process, "nginx")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)  # graceful
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None and self.process.stderr is not None:
            self.process.stderr.close()

    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=15)


@dataclass
class Instance:
    """One `voice-relay serve` child process."""

    name: str
    port: int
    env: dict[str, str]
    server: Server | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def process(self) -> asyncio.subprocess.Process:
        assert self.server is not None
        return self.server.process

    async def start(self) -> None:
        cmd = [
            sys.executable,
            "-m",
            "web.cli",
            "serve",
            "--host",
            LOOPBACK,
            "--port",
            str(self.port),
        ]
        self.server = Server(self.name, "relay", await spawn(cmd, self.env), self.url)
        await wait_listening(self.server, self.port)
        async with self.http() as http:
            for _ in range(int(READY_TIMEOUT_S / 0.05)):
                if (await http.get("/readyz")).status_code == 200:
                    return
                await asyncio.sleep(0.05)
        raise RuntimeError(f"instance {self.name} never became ready")

    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=15)

    def signal(self, sig: int) -> None:
        self.process.send_signal(sig)

    async def stop(self) -> None:
        if self.server is not None:
            await stop(self.server.process)


@dataclass
class Cluster:
    redis: RedisServer
    nginx: Nginx
    instances: list[Instance] = field(default_factory=list)


def instance_env(name: str, data_dir: Path, redis_url: str, **settings: Any) -> dict[str, str]:
    values: dict[str, Any] = {
        "BACKEND": "local",
        "MODEL": "loopback",  # answers with the audio it hears: audio flows both ways
        "DATA_DIR": data_dir,
        "REDIS_URL": redis_url,
        "SECRET_KEY": SECRET_KEY,
        "ADMIN_TOKEN": ADMIN_TOKEN,
        "INSTANCE_ID": name,
        "TRUSTED_PROXIES": LOOPBACK,  # nginx
        "WORKERS": 1,
        "DRAIN_S": 0,  # stopping at the end of a test ends its calls at once
        **settings,
    }
    return child_env(**{f"VOICE_RELAY_{key.upper()}": str(v) for key, v in values.items()})


@asynccontextmanager
async def cluster(
    tmp_path: Path, names: tuple[str, ...] = ("a", "b"), **settings: Any
) -> AsyncIterator[Cluster]:
    """Redis, the instances (settings for all, or `{name}__setting` for one) and nginx."""
    redis = RedisServer()
    ports = {name: free_port() for name in names}
    nginx = Nginx(tmp_path / "nginx", list(ports.values()))
    instances = []
    for name in names:
        own = {key: value for key, value in settings.items() if "__" not in key}
        own |= {
            key.split("__", 1)[1]: value
            for key, value in settings.items()
            if key.startswith(f"{name}__")
        }
        env = instance_env(name, tmp_path / f"data-{name}", redis.url, **own)
        instances.append(Instance(name, ports[name], env))
    async with AsyncExitStack() as stack:
        redis.start()
        stack.callback(redis.stop)
        nginx.start()
        stack.callback(nginx.stop)
        for instance in instances:
            stack.push_async_callback(instance.stop)
        await asyncio.gather(*(instance.start() for instance in instances))
        yield Cluster(redis, nginx, instances)


async def post_offer(http: httpx.AsyncClient, **body: Any) -> httpx.Response:
    """One offer; the peer is closed at once (the answer is not used)."""
    peer = ClientPeer()
    try:
        offer = await peer.offer()
        return await http.post("/api/sessions", json={"sdp": offer.sdp, "type": offer.type, **body})
    finally:
        await peer.close()


async def create_link(http: httpx.AsyncClient, slug: str, **fields: Any) -> None:
    body = {"slug": slug, "title": slug.title(), **fields}
    response = await http.post("/api/admin/links", json=body, headers=ADMIN)
    assert response.status_code == 201, response.text


async def cluster_view(http: httpx.AsyncClient) -> dict[str, Any]:
    response = await http.get("/api/admin/sessions", headers=ADMIN)
    assert response.status_code == 200, response.text
    view: dict[str, Any] = response.json()
    return view


def session_instances(view: dict[str, Any]) -> dict[str, str]:
    return {entry["id"]: entry["instance"] for entry in view["sessions"]}


async def start_call(http: httpx.AsyncClient, **body: Any) -> ClientPeer:
    """A real call (tone in, the loopback model's audio back), connected and flowing."""
    client = ClientPeer(SpeechTrack(tone(60_000, hz=600.0), leading_silence_s=0.2))
    offer = await client.offer()
    response = await http.post("/api/sessions", json={"sdp": offer.sdp, "type": offer.type, **body})
    assert response.status_code == 201, response.text
    answer = response.json()
    client.session_id = answer["session_id"]
    await client.pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], answer["type"]))
    await wait_until(lambda: len(client.received) > PCM_RATE_HZ, timeout_s=15)  # 0.5 s back
    return client


async def audio_flows(client: ClientPeer, seconds: float = 1.0) -> bool:
    """Whether about `seconds` of audio more arrives (2 bytes a sample) within `seconds`."""
    before = len(client.received)
    await asyncio.sleep(seconds)
    return len(client.received) - before > PCM_RATE_HZ * seconds
