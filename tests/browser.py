"""Browser test helpers: test speech for Chromium's fake microphone, and a headless Chromium.

Chromium sends WebRTC only on loopback here (see docs/testing-network.md): host candidates on
127.0.0.1 need --allow-loopback-in-peer-connection, and the tests run in a network namespace
with only `lo`.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import wave
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
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
WAV_RATE_HZ = 16_000
# Generous: a loaded 2-core machine runs the server, the model and Chromium at once.
UI_TIMEOUT_MS = 20_000

T = TypeVar("T")


def write_wav(path: Path, samples: np.ndarray, rate_hz: int = WAV_RATE_HZ) -> Path:
    """16-bit PCM mono WAV, the format Chromium's fake audio capture reads."""
    pcm = np.clip(samples, -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate_hz)
        wav.writeframes(pcm.tobytes())
    return path


def speech_wav(path: Path, text: str, *, silence_s: float = 4.0, voice: str = "en-us") -> Path:
    """`text` spoken by espeak-ng, then `silence_s` of silence so the server VAD ends the turn.

    Chromium loops the file, so every loop is one complete turn.
    """
    espeak = shutil.which("espeak-ng") or "/usr/bin/espeak-ng"
    raw = path.with_suffix(".espeak.wav")
    subprocess.run(
        [espeak, "-v", voice, "-s", "150", "-w", str(raw), text],
        check=True,
        timeout=30,
        capture_output=True,
    )
    with wave.open(str(raw)) as wav:
        assert wav.getsampwidth() == 2 and wav.getnchannels() == 1
        rate = wav.getframerate()
        speech = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    raw.unlink()
    lead = np.zeros(int(0.3 * rate), dtype="<i2")
    tail = np.zeros(int(silence_s * rate), dtype="<i2")
    return write_wav(path, np.concatenate([lead, speech, tail]), rate)


def silence_wav(path: Path, seconds: float = 2.0) -> Path:
    return write_wav(path, np.zeros(int(seconds * WAV_RATE_HZ)))


@asynccontextmanager
async def chromium(
    *, audio_file: Path | None = None, allow_microphone: bool = True
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
