"""The embeddable widget in a real browser, on host pages served from other origins.

Pins: a host page on an allowed origin opens the widget and holds a conversation with the local
backend through the iframe, whose states (live, ended) the launcher shows; a host page on
another origin cannot frame the demo (CSP frame-ancestors) and cannot start a session with it
(Origin check).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import uvicorn
from playwright.async_api import expect
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from web.links import LinkCreate, Persona

from .browser import UI_TIMEOUT_MS, artifact, chromium
from .conftest import LOOPBACK, LiveServer, wait_until
from .speech import speech_wav

pytestmark = pytest.mark.browser

HOST_PAGE = """<!doctype html>
<html><head><title>Host shop</title>
<style>
  * {{ color: red !important; font-size: 40px !important; }}
  button {{ display: none; }}
</style>
</head><body><h1>Welcome to the shop</h1>
<script src="{relay}/widget.js" data-link="shop" data-label="Ask Sam" data-accent="#0a7"
  async></script>
</body></html>"""


@asynccontextmanager
async def host_site(relay_url: str) -> AsyncIterator[str]:
    """A third-party site on its own origin (another port), embedding the widget."""

    async def home(request: Request) -> HTMLResponse:
        return HTMLResponse(HOST_PAGE.format(relay=relay_url))

    sock = socket.socket()
    sock.bind((LOOPBACK, 0))
    server = uvicorn.Server(
        uvicorn.Config(Starlette(routes=[Route("/", home)]), log_level="warning")
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    await wait_until(lambda: server.started)
    try:
        yield f"http://{LOOPBACK}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        sock.close()


async def add_shop_link(live: LiveServer, origin: str) -> None:
    await live.app.state.links.create(
        LinkCreate(
            slug="shop",
            title="Shop helper",
            persona=Persona(instructions="You are Sam."),
            allowed_origins=[origin],
        )
    )


async def test_widget_on_an_allowed_origin_holds_a_conversation(
    live_server: LiveServer, tmp_path: Path
) -> None:
    wav = speech_wav(tmp_path / "speech.wav", "Hello, when does the shop open?")
    async with host_site(live_server.url) as site, chromium(audio_file=wav) as browser:
        await add_shop_link(live_server, site)
        page = await browser.new_page(viewport={"width": 1100, "height": 800})
        page.set_default_timeout(UI_TIMEOUT_MS)
        await page.goto(site)
        launcher = page.locator("[data-voice-relay-widget] .launcher")
        await expect(launcher).to_have_text("Ask Sam")
        # The host page's CSS (red, 40px, hidden buttons) does not reach the widget.
        assert await launcher.is_visible()
        color = await launcher.evaluate("el => getComputedStyle(el).color")
        assert color == "rgb(255, 255, 255)"
        await launcher.click()
        await expect(launcher).to_have_attribute("aria-expanded", "true")
        frame = page.frame_locator("[data-voice-relay-widget] iframe")
        await expect(frame.locator(".embed__title")).to_have_text("Shop helper")
        await frame.get_by_role("button", name="Start conversation").click()
        await expect(frame.locator(".msg--assistant .msg__text").first).to_have_text(
            "(echo)", timeout=60_000
        )
        # The iframe tells the widget a conversation is live, and when it has ended.
        await expect(launcher).to_have_attribute("data-live", "")
        await page.screenshot(path=artifact("widget.png"))
        assert len(live_server.registry) == 1
        await frame.get_by_role("button", name="End conversation").click()
        await expect(launcher).not_to_have_attribute("data-live", "")
        await wait_until(lambda: len(live_server.registry) == 0, timeout_s=10)
        # talk-ui.js takes a second click within 400 ms for a double click and ignores it.
        await page.wait_for_timeout(500)
        await frame.get_by_role("button", name="Start conversation").click()
        await expect(launcher).to_have_attribute("data-live", "")
        await wait_until(lambda: len(live_server.registry) == 1, timeout_s=10)
        # Closing the panel removes the iframe: its page hangs up and frees the session.
        await page.locator("[data-voice-relay-widget] .close").click()
        await expect(page.locator("[data-voice-relay-widget] iframe")).to_have_count(0)
        await wait_until(lambda: len(live_server.registry) == 0, timeout_s=10)


async def test_widget_on_another_origin_cannot_frame_or_start_a_session(
    live_server: LiveServer, tmp_path: Path
) -> None:
    async with host_site(live_server.url) as site, chromium() as browser:
        await add_shop_link(live_server, "http://allowed.example.test")
        page = await browser.new_page()
        page.set_default_timeout(UI_TIMEOUT_MS)
        blocked: list[str] = []
        page.on(
            "console", lambda m: blocked.append(m.text) if "frame-ancestors" in m.text else None
        )
        await page.goto(site)
        await page.locator("[data-voice-relay-widget] .launcher").click()
        iframe = page.locator("[data-voice-relay-widget] iframe")
        await expect(iframe).to_have_count(1)
        await wait_until(lambda: bool(blocked), timeout_s=10)
        frame = page.frame_locator("[data-voice-relay-widget] iframe")
        await expect(frame.locator("#app")).to_have_count(0)
        # A script on this origin calling the API directly is refused too.
        status = await page.evaluate(
            """async (relay) => {
                const r = await fetch(relay + "/api/sessions", {
                    method: "POST", headers: {"Content-Type": "application/json"},
                    body: JSON.stringify({sdp: "v=0", type: "offer", link: "shop"}),
                    mode: "no-cors",
                }).catch(() => null);
                return r ? r.type : "failed";
            }""",
            live_server.url,
        )
        assert status in ("opaque", "failed")
        assert len(live_server.registry) == 0
