"""Browser test helpers: a headless Chromium with fake media devices, and the talk page in it.

The WAV files its fake microphone plays come from tests/speech.py.

Chromium sends WebRTC only on loopback here (see docs/testing-network.md): host candidates on
127.0.0.1 need --allow-loopback-in-peer-connection, and the tests run in a network namespace
with only `lo`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS_DIR = Path(__file__).resolve().parent.parent / "test-artifacts"
BASE_ARGS = [
    "--no-sandbox",
    "--allow-loopback-in-peer-connection",
    "--autoplay-policy=no-user-gesture-required",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-gpu",
    "--disable-quic",
    "--use-fake-device-for-media-stream",
]
# Generous: a loaded 2-core machine runs the server, the model and Chromium at once.
UI_TIMEOUT_MS = 20_000

T = TypeVar("T")


@asynccontextmanager
async def chromium(
    *,
    audio_file: Path | None = None,
    allow_microphone: bool = True,
    extra_args: tuple[str, ...] = (),
) -> AsyncIterator[Browser]:
    """Headless Debian Chromium with fake media devices (Playwright gives it a fresh profile).

    With `allow_microphone` the permission prompt is accepted (--use-fake-ui-for-media-stream);
    without it every prompt is denied, as when a person blocks the microphone.
    """
    args = list(BASE_ARGS)
    args.append(
        "--use-fake-ui-for-media-stream" if allow_microphone else "--deny-permission-prompts"
    )
    if audio_file is not None:
        args.append(f"--use-file-for-fake-audio-capture={audio_file}")
    args += extra_args
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=args, timeout=60_000
        )
        try:
            yield browser
        finally:
            await browser.close()


@dataclass
class TalkPage:
    """A page showing the talk UI, with the uncaught errors and console errors it reported."""

    page: Page
    errors: list[str] = field(default_factory=list)

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text}")


@asynccontextmanager
async def talk_page(browser: Browser, url: str, **context_options: Any) -> AsyncIterator[TalkPage]:
    """A fresh context and page at `url` with the talk UI mounted; closed afterwards."""
    context = await browser.new_context(**context_options)
    context.set_default_timeout(UI_TIMEOUT_MS)
    try:
        page = await context.new_page()
        talk = TalkPage(page)
        page.on("pageerror", lambda error: talk.errors.append(f"pageerror: {error}"))
        page.on("console", talk._on_console)
        page.on(
            "response",
            lambda r: (
                r.status >= 400
                and talk.errors.append(f"http {r.status} {r.request.method} {r.url}")
            ),
        )
        await page.goto(url)
        await page.wait_for_function("window.voiceRelay !== undefined")
        # Every state the UI goes through, so a test can assert on short-lived ones.
        await page.evaluate(
            """() => {
                window.stateLog = [];
                voiceRelay.addEventListener("statechange", (e) => stateLog.push(e.detail.state));
            }"""
        )
        yield talk
    finally:
        await context.close()


async def inbound_audio(page: Page) -> dict[str, float]:
    """The inbound-rtp audio stats of the page's current peer connection (zeros without one)."""
    stats: dict[str, float] = await page.evaluate(
        """async () => {
            const pc = window.voiceRelay.client?.pc;
            const out = { energy: 0, samples: 0, bytes: 0 };
            if (!pc) return out;
            for (const report of (await pc.getStats()).values()) {
                if (report.type === "inbound-rtp" && report.kind === "audio") {
                    out.energy = report.totalAudioEnergy ?? 0;
                    out.samples = report.totalSamplesReceived ?? 0;
                    out.bytes = report.bytesReceived ?? 0;
                }
            }
            return out;
        }"""
    )
    return stats


async def poll_until(
    read: Callable[[], Awaitable[T]], check: Callable[[T], bool], timeout_s: float = 20.0
) -> T:
    """Poll the async `read()` until `check(value)` holds; returns that value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        value = await read()
        if check(value):
            return value
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s; last value {value!r}")
        await asyncio.sleep(0.2)
