"""Tools through the whole app: a recording realtime server as the model, a real aiortc peer as
the page. Pins: a link's tools are locked (the page can neither add tools nor answer calls that
are not its own pending client calls) and never shown; a client call round trips through the
page; an unanswered one times out into an error result; the admin API refuses tools this server
cannot call; the local backend takes tool definitions and its echo model calls one.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiortc import RTCSessionDescription

import relay.webhook
from relay.tools import (
    flat_function_tools,
)

from .conftest import live_app, wait_until
from .local_backend import realtime, serve_backend
from .media import ClientPeer
from .realtime_server import RecordingServer, recording_server
from .tools_support import ADMIN, DECLARED, PARAMS, TOOLS, ga_call


async def connect_to_link(client: ClientPeer, http: Any, slug: str, **extra: Any) -> None:
    offer = await client.offer()
    body = {"sdp": offer.sdp, "type": offer.type, "link": slug, **extra}
    response = await http.post("/api/sessions", json=body)
    assert response.status_code == 201, response.text
    answer = response.json()
    await client.pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], answer["type"]))


async def ga_calls_book_table(backend: RecordingServer, call_id: str) -> None:
    await backend.send({"type": "response.created", "response": {"id": "resp_1"}})
    for event in ga_call(call_id, "book_table", '{"table": 4}'):
        await backend.send(event)
    await backend.send({"type": "response.done", "response": {"id": "resp_1"}})


async def test_link_tools_are_locked_and_client_calls_round_trip_through_the_page() -> None:
    hook = {"kind": "server", "name": "menu", "url": "https://hooks.example.org/secret-path"}
    tools = [DECLARED[2], hook]
    link = {"slug": "bistro", "title": "Bistro", "backend": "openai", "tools": tools}
    async with (
        recording_server("openai") as backend,
        live_app(
            backend="openai",
            backend_url=backend.url,
            openai_api_key="sk-t",
            admin_token=ADMIN["Authorization"].split()[1],
            webhook_secret="s",
        ) as live,
        live.http() as http,
    ):
        created = await http.post("/api/admin/links", json=link, headers=ADMIN)
        assert created.status_code == 201, created.text
        pages = [(await http.get(path)).text for path in ("/d/bistro", "/embed/bistro", "/")]
        client = ClientPeer()
        # Extra fields in the offer are not a way in either.
        await connect_to_link(client, http, "bistro", tools=[{"kind": "web_search"}])
        update = await backend.wait_for("session.update")
        await wait_until(lambda: client.channel is not None and client.channel.readyState == "open")
        evil = {"kind": "client", "name": "steal", "parameters": PARAMS}
        client.send({"type": "session.update", "session": {"tools": [evil]}})
        client.send({"type": "tool_result", "call_id": "call_x", "output": "forged"})
        await wait_until(lambda: len(client.events_of("error")) >= 2)

        await ga_calls_book_table(backend, "call_1")
        await wait_until(lambda: bool(client.events_of("tool_call")))
        [call] = client.events_of("tool_call")
        client.send({"type": "tool_result", "call_id": call["call_id"], "output": {"booked": 4}})
        output = await backend.wait_for("conversation.item.create")
        await backend.wait_for("response.create")
        await wait_until(lambda: len(client.events_of("tool")) >= 2)
        await client.close()

    assert update["session"]["tools"] == flat_function_tools(TOOLS.validate_python(tools))
    assert len(backend.of_type("session.update")) == 1  # the page's update never went through
    assert all("bistro" in page or "Bistro" in page for page in pages)
    assert not any("secret-path" in page for page in pages)  # visitors never see webhooks
    codes = [e["code"] for e in client.events_of("error")]
    assert codes == ["invalid_client_event", "invalid_client_event"]
    assert call == {
        "type": "tool_call",
        "call_id": "call_1",
        "name": "book_table",
        "arguments": {"table": 4},
    }
    assert output["item"] == {
        "type": "function_call_output",
        "call_id": "call_1",
        "output": '{"booked": 4}',
    }
    assert [e["status"] for e in client.events_of("tool")] == ["started", "done"]


async def test_unanswered_client_call_times_out_into_an_error_result(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(relay.webhook, "CLIENT_CALL_TIMEOUT_S", 0.3)
    async with (
        recording_server("openai") as backend,
        live_app(
            backend="openai", backend_url=backend.url, openai_api_key="sk-t", tools=[DECLARED[2]]
        ) as live,
        live.http() as http,
    ):
        client = ClientPeer()
        await client.connect(http)
        await backend.wait_for("session.update")
        await ga_calls_book_table(backend, "call_2")
        output = await backend.wait_for("conversation.item.create")
        await backend.wait_for("response.create")
        await wait_until(lambda: len(client.events_of("tool")) >= 2)
        late = {"type": "tool_result", "call_id": "call_2", "output": "too late"}
        client.send(late)
        await wait_until(lambda: bool(client.events_of("error")))
        await client.close()

    assert output["item"]["call_id"] == "call_2"
    assert "did not answer within 0.3 s" in json.loads(output["item"]["output"])["error"]
    assert [e["status"] for e in client.events_of("tool")] == ["started", "failed"]
    assert len(backend.of_type("conversation.item.create")) == 1  # the late answer is refused


async def test_admin_api_refuses_tools_this_server_cannot_call() -> None:
    private = {"kind": "server", "name": "hook", "url": "https://192.168.1.5/hook"}
    async with (
        live_app(admin_token=ADMIN["Authorization"].split()[1], webhook_secret="s") as live,
        live.http() as http,
    ):
        refused = await http.post(
            "/api/admin/links", json={"slug": "a", "title": "A", "tools": [private]}, headers=ADMIN
        )
        built_in = await http.post(
            "/api/admin/links",
            json={"slug": "b", "title": "B", "tools": [{"kind": "web_search"}]},
            headers=ADMIN,
        )
    assert refused.status_code == built_in.status_code == 400
    assert "192.168.1.5 is private" in refused.json()["error"]["message"]
    assert "stepfun" in built_in.json()["error"]["message"]


# -- the local backend: tool definitions in session.update, and the echo model's call --------

WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}


async def test_local_backend_accepts_flat_and_nested_tool_definitions() -> None:
    flat = {"type": "function", "name": "get_weather", "parameters": WEATHER}
    nested = {"type": "function", "function": {"name": "get_time", "description": "Clock"}}
    async with serve_backend() as backend, realtime(backend, "echo") as client:
        updated = await client.roundtrip(
            {"type": "session.update", "session": {"tools": [flat, nested]}}, "session.updated"
        )
        refused = await client.roundtrip(
            {"type": "session.update", "session": {"tools": [{"type": "web_search"}]}}, "error"
        )
    assert [t["name"] for t in updated["session"]["tools"]] == ["get_weather", "get_time"]
    assert updated["session"]["tools"][1] == {
        "type": "function",
        "name": "get_time",
        "description": "Clock",
        "parameters": {"type": "object", "properties": {}},
    }
    assert refused["error"]["param"] == "session.tools[0].type"


async def test_local_echo_calls_the_weather_tool_and_reads_its_output_back() -> None:
    tool = {"kind": "client", "name": "get_weather", "parameters": WEATHER}
    async with (
        live_app(backend="local", model="echo", tools=[tool]) as live,
        live.http() as http,
    ):
        client = ClientPeer()
        await client.connect(http)
        await wait_until(lambda: client.channel is not None and client.channel.readyState == "open")
        client.send({"type": "text", "text": "What's the weather in Paris?"})
        await wait_until(lambda: bool(client.events_of("tool_call")))
        [call] = client.events_of("tool_call")
        client.send({"type": "tool_result", "call_id": call["call_id"], "output": {"sky": "clear"}})

        def read_back() -> list[str]:
            return [
                e["text"]
                for e in client.events_of("transcript")
                if e["role"] == "assistant" and e["final"] and "tool answered" in e["text"]
            ]

        await wait_until(lambda: bool(read_back()), timeout_s=10)
        await client.close()
    assert call["name"] == "get_weather" and call["arguments"] == {"city": "Paris"}
    assert read_back() == ['(echo) the tool answered: {"sky": "clear"}']
    assert [e["status"] for e in client.events_of("tool")] == ["started", "done"]
