"""`voice-relay serve` and Chromium as hosts of a test network (tests/netns.py).

The server is a child process in its namespace; Chromium runs in the client's namespace through a
wrapper that enters it (Playwright talks to the browser over a pipe, so only WebRTC, HTTP and
TURN go through the test network). Chromium's NSS database (the TURN certificate's trust) lives
in a HOME of the test's own.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

from playwright.async_api import Browser, async_playwright

from .browser import BASE_ARGS, CHROMIUM
from .netns import ADDRESS, RELAY_PORT, Network, stop, trust_certificate

VOICE_RELAY = Path(sys.executable).parent / "voice-relay"


@contextmanager
def relay_server(
    net: Network,
    workdir: Path,
    settings: Mapping[str, str] | None = None,
    *,
    role: str = "relay",
    public: str | None = None,
    executable: Path = VOICE_RELAY,
) -> Iterator[str]:
    """`voice-relay serve` (local `echo` model) on port 8080 of `role`'s host; yields the URL the
    client uses (`public`: the address the server is reached at, e.g. its NAT's). `settings` are
    VOICE_RELAY_* variables without the prefix; `executable` another install's `voice-relay`."""
    address = public or ADDRESS[role]
    url = f"http://{address}:{RELAY_PORT}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOICE_RELAY_")}
    values = {
        "BACKEND": "local",
        "MODEL": "echo",
        "HOST": "0.0.0.0",
        "PORT": str(RELAY_PORT),
        "PUBLIC_URL": url,
        "DATA_DIR": str(workdir / "data"),
        "LOG_LEVEL": "info",
    }
    values.update(settings or {})
    env.update({f"VOICE_RELAY_{name}": value for name, value in values.items()})
    env["PYTHONUNBUFFERED"] = "1"
    with open(workdir / f"voice-relay-{role}.log", "ab") as log:
        process = net.spawn(role, [str(executable), "serve"], env, log)
    try:
        net.wait_tcp(role, ADDRESS[role], RELAY_PORT, process)
        yield url
    finally:
        stop(process)


@asynccontextmanager
async def chromium_in(
    net: Network, role: str, workdir: Path, audio_file: Path, trusted_cert: Path | None = None
) -> AsyncIterator[Browser]:
    """Headless Debian Chromium whose network is `role`'s; its fake microphone plays
    `audio_file`; it trusts `trusted_cert` (a self-signed TURN/TLS certificate)."""
    home = workdir / f"chromium-home-{role}"
    home.mkdir(exist_ok=True)
    if trusted_cert is not None and not (home / ".pki").exists():
        trust_certificate(home, trusted_cert)
    wrapper = workdir / f"chromium-{role}"
    wrapper.write_text(
        "#!/bin/sh\n"
        f"export HOME='{home}'\n"
        f'exec nsenter --net=/run/netns/{net.ns(role)} -- {CHROMIUM} "$@"\n'
    )
    wrapper.chmod(0o755)
    # The page is plain HTTP on a test address: the microphone needs a secure origin.
    origins = ",".join(f"http://{ADDRESS[host]}:{RELAY_PORT}" for host in ("relay", "nat"))
    args = [
        *BASE_ARGS,
        "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-audio-capture={audio_file}",
        f"--unsafely-treat-insecure-origin-as-secure={origins}",
    ]
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(wrapper), headless=True, args=args, timeout=60_000
        )
        try:
            yield browser
        finally:
            await browser.close()
