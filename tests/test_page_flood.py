"""A page that floods its data channel, through the real relay, while another session talks.

Pins: 2,000 typed messages in a second reach the model as a handful of `conversation.item.create`
and `response.create` (each a billed response on a paid model), the page is told with a few
`too_many_messages` errors, and typed text goes through again once the page slows down;
messages over the size limit are refused with `invalid_client_event` and cost the other
session's audio no gap.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from relay.policy import MAX_MESSAGE_BYTES, TEXT_BURST, TEXT_RATE_PER_S

from .conftest import live_app, wait_until
from .media import ClientPeer
from .realtime_server import recording_server
from .test_hostile_backends import MAX_GAP_S, audio_flow, counter, errors, states, summary

pytestmark = pytest.mark.integration

FLOOD = 2000


def user_texts(client: ClientPeer) -> list[str]:
    return [e["text"] for e in client.events_of("transcript") if e["role"] == "user"]


async def test_a_flood_of_typed_text_reaches_the_model_a_few_times(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="relay")
    async with (
        audio_flow() as flow,
        recording_server("local") as backend,
        live_app(backend_url=backend.url) as live,
        live.http() as http,
    ):
        client = ClientPeer()
        await client.connect(http)
        await wait_until(lambda: "listening" in states(client), timeout_s=10)
        since = flow.mark()
        loop = asyncio.get_running_loop()
        started = loop.time()
        for i in range(FLOOD):  # in one second
            client.send({"type": "text", "text": f"buy now {i}"})
            if i % 100 == 99:
                await asyncio.sleep(0.05)
        channel = client.channel
        assert channel is not None
        await wait_until(lambda: channel.bufferedAmount == 0, timeout_s=30)
        await asyncio.sleep(2.5)  # the page slows down: the limits refill
        client.send({"type": "text", "text": "still here"})
        # SCTP may have to resend what the loopback dropped during the flood.
        await wait_until(lambda: "still here" in user_texts(client), timeout_s=30)
        elapsed = loop.time() - started
        print(f"flood of {FLOOD} delivered and answered in {elapsed:.1f} s")  # noqa: T201
        created = len(backend.of_type("conversation.item.create"))
        # A text sent during a reply asks for its response once the cancelled one is done.
        await wait_until(lambda: len(backend.of_type("response.create")) >= created, timeout_s=5)
        responses = len(backend.of_type("response.create"))
        await http.delete(f"/api/sessions/{client.session_id}")
        await client.close()
    accepted = len(user_texts(client)) - 1
    assert TEXT_BURST <= accepted <= TEXT_BURST + TEXT_RATE_PER_S * elapsed
    assert created == responses == accepted + 1
    assert 1 <= errors(client).count("too_many_messages") <= elapsed + 1
    assert counter(summary(caplog, client), "page_refused_messages") == FLOOD - accepted
    assert flow.longest_gap_s(since) < MAX_GAP_S


async def test_oversize_messages_are_refused_without_a_gap_in_another_session() -> None:
    async with audio_flow() as flow, live_app() as live, live.http() as http:
        client = ClientPeer()
        await client.connect(http)
        await wait_until(lambda: "listening" in states(client), timeout_s=10)
        since = flow.mark()
        for size in (MAX_MESSAGE_BYTES + 1, 64 * 1024, 200 * 1024) * 5:
            client.send({"type": "text", "text": "x" * size})
        await wait_until(lambda: len(errors(client)) == 15, timeout_s=30)
        client.send({"type": "text", "text": "hello"})
        await wait_until(lambda: "hello" in user_texts(client), timeout_s=10)
        await http.delete(f"/api/sessions/{client.session_id}")
        await client.close()
    assert set(errors(client)) == {"invalid_client_event"}
    assert all("too large" in e["detail"] for e in client.events_of("error"))
    assert flow.longest_gap_s(since) < MAX_GAP_S
