"""PageChannel over a real data channel between two aiortc peers on loopback.

Pins: events sent before the page's channel opens are kept (the newest 32) and arrive in order
once it opens; the page's messages are checked by relay.policy, allowed ones reach the session
and anything else is answered with an `invalid_client_event` error carrying the reason; typed
text beyond a few a second, and any message beyond the looser overall limit, is dropped and
counted, and the page is told with one `too_many_messages` error a second, not one a message.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiortc import RTCDataChannel, RTCPeerConnection

from relay.page_channel import MAX_PENDING_EVENTS, PageChannel
from relay.peer import create_peer_connection
from relay.policy import MESSAGE_BURST, TEXT_BURST, Interrupt, PageMessage, TextMessage

from .conftest import wait_until
from .media import LOOPBACK

pytestmark = pytest.mark.integration


class Page:
    """The browser's end: a data channel named `events`, recording what the relay sends."""

    def __init__(self, pc: RTCPeerConnection) -> None:
        self.channel: RTCDataChannel = pc.createDataChannel("events")
        self.events: list[dict[str, Any]] = []
        self.channel.on("message", lambda m: self.events.append(json.loads(m)))

    def send(self, message: object) -> None:
        self.channel.send(message if isinstance(message, str) else json.dumps(message))


@asynccontextmanager
async def connected(page_channel: PageChannel) -> AsyncIterator[Page]:
    """A page peer whose `events` channel the relay peer hands to `page_channel`."""
    page_pc = create_peer_connection([], host_addresses=(LOOPBACK,))
    relay_pc = create_peer_connection([], host_addresses=(LOOPBACK,))
    relay_pc.on("datachannel", page_channel.attach)
    page = Page(page_pc)
    try:
        await page_pc.setLocalDescription(await page_pc.createOffer())
        assert page_pc.localDescription is not None
        await relay_pc.setRemoteDescription(page_pc.localDescription)
        await relay_pc.setLocalDescription(await relay_pc.createAnswer())
        assert relay_pc.localDescription is not None
        await page_pc.setRemoteDescription(relay_pc.localDescription)
        await wait_until(lambda: page.channel.readyState == "open", timeout_s=10)
        yield page
    finally:
        await page_pc.close()
        await relay_pc.close()


async def test_page_channel_keeps_events_until_the_channel_opens() -> None:
    page_channel = PageChannel(lambda message: None)
    sent = [{"type": "state", "state": f"s{i}"} for i in range(MAX_PENDING_EVENTS + 8)]
    for event in sent:
        page_channel.send(event)
    async with connected(page_channel) as page:
        await wait_until(lambda: len(page.events) >= MAX_PENDING_EVENTS)
        page_channel.send({"type": "latency", "turn": 1, "ms": 5.0})
        await wait_until(lambda: len(page.events) == MAX_PENDING_EVENTS + 1)
    # The oldest went when the bound was reached; the rest kept their order.
    assert page.events[:-1] == sent[-MAX_PENDING_EVENTS:]
    assert page.events[-1] == {"type": "latency", "turn": 1, "ms": 5.0}


async def test_page_channel_passes_allowed_messages_and_refuses_the_rest() -> None:
    received: list[PageMessage] = []
    page_channel = PageChannel(received.append)
    async with connected(page_channel) as page:
        page.send({"type": "text", "text": "  Hello  "})
        page.send({"type": "interrupt"})
        page.send({"type": "response.cancel"})
        page.send({"type": "session.update", "session": {"instructions": "Be a pirate."}})
        page.send("not json")
        page.send({"type": "text", "text": "x" * 3000})
        await wait_until(lambda: len(received) == 3 and len(page.events) == 3)
    assert received == [TextMessage("Hello"), Interrupt(), Interrupt()]
    assert [e["code"] for e in page.events] == ["invalid_client_event"] * 3
    assert all(e["type"] == "error" and set(e) == {"type", "code", "detail"} for e in page.events)
    details = [e["detail"] for e in page.events]
    assert "'session.update' is not allowed" in details[0]
    assert "not JSON" in details[1]
    assert "too long" in details[2]


class Clock:
    """Time as the test sets it."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_page_channel_limits_typed_text_and_says_so_once_a_second() -> None:
    received: list[PageMessage] = []
    clock = Clock()
    page_channel = PageChannel(received.append, clock=clock)
    async with connected(page_channel) as page:
        for i in range(30):
            page.send({"type": "text", "text": f"buy now {i}"})
        await wait_until(lambda: page_channel.refused_messages == 30 - TEXT_BURST)
        assert received == [TextMessage(f"buy now {i}") for i in range(TEXT_BURST)]
        # An interrupt is not typed text: it still gets through.
        page.send({"type": "interrupt"})
        await wait_until(lambda: len(received) == TEXT_BURST + 1)
        # Time refills the bucket: a second later two more go through, and the third is refused.
        clock.now += 1.0
        for text in ("later", "later too", "too soon"):
            page.send({"type": "text", "text": text})
        await wait_until(lambda: len(page.events) == 2)
        assert received[-2:] == [TextMessage("later"), TextMessage("later too")]
    refusal = {"type": "error", "code": "too_many_messages"}
    assert page.events == [refusal | {"detail": "more than 2 typed messages a second"}] * 2
    assert page_channel.refused_messages == 30 - TEXT_BURST + 1


async def test_page_channel_limits_every_kind_of_message() -> None:
    received: list[PageMessage] = []
    page_channel = PageChannel(received.append, clock=Clock())
    async with connected(page_channel) as page:
        for _ in range(500):
            page.send({"type": "interrupt"})
            page.send("not json")
        await wait_until(
            lambda: page_channel.refused_messages == 1000 - MESSAGE_BURST, timeout_s=10
        )
        await wait_until(lambda: len(page.events) == MESSAGE_BURST // 2 + 1)
    assert received == [Interrupt()] * (MESSAGE_BURST // 2)
    codes = [e["code"] for e in page.events]
    assert codes == ["invalid_client_event"] * (MESSAGE_BURST // 2) + ["too_many_messages"]
