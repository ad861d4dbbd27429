"""Browser test helpers: a headless Chromium with fake media devices, and the talk page in it.

The WAV files its fake microphone plays come from tests/speech.py. `TalkPage` holds what the
talk page tests do over and over: start a call, wait for a state, feed the page a server event,
refuse its session requests, check that the microphone was released.

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

from playwright.async_api import Browser, ConsoleMessage, Page, Route, async_playwright, expect

from .conftest import LiveServer, wait_until

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
TURN_TIMEOUT_MS = 40_000  # one loop of the fake microphone file plus the echo, on a slow machine
# Assertions wait as long as page actions (expect's own default is 5 s).
expect.set_options(timeout=UI_TIMEOUT_MS)

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

    def assert_no_errors(self, allowing: str | None = None) -> None:
        """Nothing went wrong, or only what mentions `allowing` (an expected HTTP status)."""
        unexpected = [e for e in self.errors if allowing is None or allowing not in e]
        assert unexpected == [], self.errors

    async def start(self) -> None:
        await self.page.get_by_role("button", name="Start conversation").click()

    async def start_listening(self) -> None:
        """Start a conversation and wait until the server listens."""
        await self.start()
        await self.wait_for_state("listening", UI_TIMEOUT_MS)

    async def wait_for_state(self, state: str, timeout_ms: int = TURN_TIMEOUT_MS) -> None:
        """Wait until the UI has been in `state` (recorded, so short-lived states count too)."""
        await self.page.wait_for_function(
            "(state) => window.stateLog.includes(state)", arg=state, timeout=timeout_ms
        )

    async def hang_up(self, live_server: LiveServer) -> None:
        """End the conversation and wait until the server has let the session go."""
        await self.page.get_by_role("button", name="End conversation").click()
        await wait_until(lambda: len(live_server.registry) == 0, timeout_s=10)

    async def microphone_tracks(self) -> list[dict[str, object]]:
        tracks: list[dict[str, object]] = await self.page.evaluate("voiceRelay.microphoneTracks()")
        return tracks

    async def assert_microphone_released(self) -> None:
        tracks = await self.microphone_tracks()
        assert tracks and all(t["readyState"] == "ended" for t in tracks)

    async def deliver(self, event: dict[str, Any]) -> None:
        """Hand the page `event` as if the server had sent it on the data channel."""
        await self.page.evaluate(
            """(data) => voiceRelay.client.channel.dispatchEvent(
                new MessageEvent("message", { data: JSON.stringify(data) }))""",
            event,
        )

    async def refuse_sessions(
        self, status: int, code: str, headers: dict[str, str] | None = None
    ) -> None:
        """From now on the server answers every new session with this error."""

        async def refuse(route: Route) -> None:
            if route.request.method != "POST":
                await route.continue_()
                return
            body = {"error": {"code": code, "message": f"refused by the test ({code})"}}
            await route.fulfill(status=status, headers=headers, json=body)

        await self.page.route("**/api/sessions", refuse)


@asynccontextmanager
async def talk_page(
    browser: Browser, url: str, *, init_script: str | None = None, **context_options: Any
) -> AsyncIterator[TalkPage]:
    """A fresh context and page at `url` with the talk UI mounted; closed afterwards."""
    context = await browser.new_context(**context_options)
    context.set_default_timeout(UI_TIMEOUT_MS)
    if init_script is not None:
        await context.add_init_script(init_script)
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


@asynccontextmanager
async def open_talk(
    url: str,
    audio_file: Path | None = None,
    *,
    allow_microphone: bool = True,
    extra_args: tuple[str, ...] = (),
    locale: str = "en-US",
    **page_options: Any,
) -> AsyncIterator[TalkPage]:
    """`url`'s talk UI in a fresh Chromium whose fake microphone plays `audio_file`."""
    async with (
        chromium(
            audio_file=audio_file, allow_microphone=allow_microphone, extra_args=extra_args
        ) as browser,
        talk_page(browser, url, locale=locale, **page_options) as talk,
    ):
        yield talk


def artifact(name: str) -> Path:
    """Where a screenshot for review goes (test-artifacts/, gitignored)."""
    ARTIFACTS_DIR.mkdir(exist_ok=True)
    return ARTIFACTS_DIR / name


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
