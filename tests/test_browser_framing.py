"""Framing in Chromium: a foreign origin cannot frame the talk page; embeds work where allowed.

The foreign site is a real second origin: a tiny HTTP server on another loopback port whose
page frames the relay's pages. Also pins that the pages run under their CSP (no inline script
or style is blocked).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from playwright.async_api import Frame, Page, expect

from web.links import LinkCreate

from .browser import UI_TIMEOUT_MS, chromium
from .conftest import LiveServer
from .media import LOOPBACK

pytestmark = pytest.mark.browser


@asynccontextmanager
async def foreign_site(html: str) -> AsyncIterator[str]:
    """Serves `html` for every request on a free loopback port; yields the site's origin."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        body = html.encode()
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, LOOPBACK, 0)
    try:
        yield f"http://{LOOPBACK}:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        await server.wait_closed()


async def framed(page: Page, frame_id: str) -> Frame:
    element = await page.wait_for_selector(f"#{frame_id}", state="attached")
    frame = await element.content_frame()
    assert frame is not None
    await frame.wait_for_load_state()
    return frame


def csp_errors(messages: list[str]) -> list[str]:
    return [m for m in messages if "Content Security Policy" in m or "Refused to" in m]


async def test_only_allowed_origins_can_frame_and_pages_run_under_their_csp(
    live_server: LiveServer,
) -> None:
    frames = """<!doctype html><title>foreign</title>
        <iframe id="talk" src="{relay}/"></iframe>
        <iframe id="shop" src="{relay}/embed/shop" allow="microphone; autoplay"></iframe>
        <iframe id="closed" src="{relay}/embed/closed"></iframe>"""
    async with foreign_site(frames.format(relay=live_server.url)) as origin:
        # The site's origin is known only now: the page is rendered per request.
        await live_server.app.state.links.create(
            LinkCreate(slug="shop", title="Shop", allowed_origins=[origin])
        )
        await live_server.app.state.links.create(LinkCreate(slug="closed", title="Closed"))
        async with chromium() as browser:
            page = await browser.new_page()
            console: list[str] = []
            page.on("console", lambda message: console.append(message.text))
            await page.goto(f"{origin}/host.html")
            talk, shop, closed = [await framed(page, name) for name in ("talk", "shop", "closed")]
            await expect(shop.get_by_role("button", name="Start conversation")).to_be_visible(
                timeout=UI_TIMEOUT_MS
            )
            # A frame-ancestors refusal leaves Chromium's error page in the frame.
            assert not talk.url.startswith(live_server.url), talk.url
            assert not closed.url.startswith(live_server.url), closed.url
            assert any("frame-ancestors" in m for m in console), console

            own = await browser.new_page()
            own_console: list[str] = []
            own.on("console", lambda message: own_console.append(message.text))
            await own.goto(f"{live_server.url}/")
            await expect(own.get_by_role("button", name="Start conversation")).to_be_visible(
                timeout=UI_TIMEOUT_MS
            )
    assert csp_errors(own_console) == []
    assert [m for m in csp_errors(console) if "frame-ancestors" not in m] == []
