"""Client tools in a real browser: the widget's host page and the talk page run the model's calls.

A local realtime server stands in for the model: a typed message makes it call the client tool
`show_product` (or StepFun's built-in web search when it asks to search), and the output it is
given back makes it say so.

Pins: through the widget on a second origin the host page's handler runs and its result reaches
the model as the `function_call_output`, the transcript shows the activity, a third origin's frame
or a forged message can neither make the host run a tool nor answer for it, and a host that does
not answer in time gives the model an error result. On the talk page a RelayClient callback
answers, the JSON export holds the call and its result, without a handler (or with one that never
answers) the model gets an error result, and a built-in web search shows while it runs.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from playwright.async_api import FrameLocator, expect
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route
from websockets.asyncio.server import ServerConnection, serve

from relay.tools import ClientTool, WebSearchTool
from web.links import LinkCreate, Persona

from .browser import UI_TIMEOUT_MS, artifact, chromium, open_talk
from .conftest import LiveServer, live_app, wait_until
from .media import LOOPBACK

pytestmark = pytest.mark.browser

EXAMPLE_PAGE = Path(__file__).resolve().parent.parent / "static" / "widget-example.html"
SHOW_PRODUCT = ClientTool(
    kind="client",
    name="show_product",
    description="Show the visitor a product on the shop's page.",
    parameters={"type": "object", "properties": {"sku": {"type": "string"}}, "required": ["sku"]},
)
ARGUMENTS = {"sku": "red-shoes"}
STEPFUN: dict[str, Any] = {"backend": "stepfun", "stepfun_api_key": "sk-test"}


@dataclass
class ToolModel:
    """A StepFun-dialect realtime server that calls a tool for each typed message."""

    url: str = ""
    received: list[dict[str, Any]] = field(default_factory=list)
    new_event: asyncio.Event = field(default_factory=asyncio.Event)
    _ws: ServerConnection | None = None
    _asked: str | None = None
    _outputs: int = 0
    _calls: int = 0

    async def handler(self, ws: ServerConnection) -> None:
        self._ws = ws
        await self.send({"type": "session.created", "session": {"id": "sess_tools"}})
        async for message in ws:
            event = json.loads(message)
            self.received.append(event)
            self.new_event.set()
            await self.react(event)

    async def react(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == "session.update":
            await self.send({"type": "session.updated", "session": event["session"]})
        elif kind == "conversation.item.create":
            item = event["item"]
            user = item["type"] == "message" and item["role"] == "user"
            self._asked = item["content"][0]["text"] if user else None
        elif kind == "response.create" and self._asked is not None:
            search = "search" in self._asked
            self._asked = None
            await self.call_tool("web_search" if search else SHOW_PRODUCT.name)
        elif kind == "response.create" and len(self.outputs()) > self._outputs:
            self._outputs = len(self.outputs())
            await self.say(f"Done: {self.outputs()[-1]}")

    async def call_tool(self, name: str) -> None:
        self._calls += 1
        n = self._calls
        response, item, call_id = f"resp_call_{n}", f"item_call_{n}", f"call_{n}"
        arguments = json.dumps(ARGUMENTS)
        call = {"id": item, "type": "function_call", "call_id": call_id, "name": name}
        await self.send({"type": "response.created", "response": {"id": response}})
        await self.send(
            {"type": "response.output_item.added", "response_id": response, "item": call}
        )
        done = {"response_id": response, "item_id": item, "call_id": call_id}
        await self.send(
            {"type": "response.function_call_arguments.done", **done, "arguments": arguments}
        )
        finished = call | {"arguments": arguments, "status": "completed"}
        await self.send(
            {"type": "response.output_item.done", "response_id": response, "item": finished}
        )
        if name == "web_search":
            # StepFun searches, then speaks what it found within the same response.
            await asyncio.sleep(1.5)
        await self.send({"type": "response.done", "response": {"id": response}})

    async def say(self, text: str) -> None:
        n = len(self.outputs())
        response, item = f"resp_say_{n}", f"item_say_{n}"
        await self.send({"type": "response.created", "response": {"id": response}})
        ids = {"response_id": response, "item_id": item}
        await self.send({"type": "response.audio_transcript.delta", **ids, "delta": text})
        await self.send({"type": "response.audio_transcript.done", **ids, "transcript": text})
        await self.send({"type": "response.done", "response": {"id": response}})

    async def send(self, event: dict[str, Any]) -> None:
        assert self._ws is not None
        await self._ws.send(json.dumps(event))

    def outputs(self) -> list[str]:
        """The `output` of every function_call_output the relay gave the model, in order."""
        return [
            e["item"]["output"]
            for e in self.received
            if e["type"] == "conversation.item.create"
            and e["item"]["type"] == "function_call_output"
        ]

    async def wait_for_outputs(self, count: int, timeout_s: float = 20.0) -> list[str]:
        async with asyncio.timeout(timeout_s):
            while len(self.outputs()) < count:
                self.new_event.clear()
                await self.new_event.wait()
        return self.outputs()


@asynccontextmanager
async def tool_model() -> AsyncIterator[ToolModel]:
    model = ToolModel()
    async with serve(model.handler, LOOPBACK, 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        model.url = f"ws://{LOOPBACK}:{port}/v1/realtime"
        yield model


@asynccontextmanager
async def site(pages: dict[str, str]) -> AsyncIterator[str]:
    """A web site of its own origin (a free port) serving `pages` by path."""

    async def page(request: Request) -> HTMLResponse:
        return HTMLResponse(pages[request.url.path])

    sock = socket.socket()
    sock.bind((LOOPBACK, 0))
    app = Starlette(routes=[Route(path, page) for path in pages])
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    await wait_until(lambda: server.started)
    try:
        yield f"http://{LOOPBACK}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        sock.close()


# A frame of a third origin on the shop's page: it tries to make the host page run a tool.
OTHER_PAGE = """<!doctype html><title>Ad</title><script>
  window.forgeCall = () => parent.postMessage({ voiceRelay: { type: "tool_call",
    call_id: "call_forged", name: "show_product", arguments: { sku: "forged" } } }, "*");
</script>"""
# Stands in for the host's handler until the test lets the example's own one answer (or, with
# `hang`, never answers).
GATE_HANDLER = """() => {
    window.calls = [];
    window.hang = false;
    const tools = window.voiceRelayWidget.tools;
    const original = tools.show_product;
    let open;
    const gate = new Promise((resolve) => { open = resolve; });
    window.openGate = () => open();
    tools.show_product = async (args, call) => {
        calls.push(call);
        if (hang) return new Promise(() => {});
        await gate;
        return original(args, call);
    };
}"""
# Messages the widget's iframe must ignore: a foreign origin from the parent, and the right
# origin from a window that is not the parent (both would otherwise answer `call_1`).
FORGE_RESULTS = """([foreign, host]) => {
    const data = { voiceRelay: { type: "tool_result", call_id: "call_1", output: "forged" } };
    window.dispatchEvent(new MessageEvent("message", { data, origin: foreign, source: parent }));
    window.dispatchEvent(new MessageEvent("message", { data, origin: host, source: window }));
}"""


async def test_widget_host_page_runs_a_client_tool_for_the_model() -> None:
    async with tool_model() as model, live_app(backend_url=model.url, **STEPFUN) as live:
        async with site({"/other": OTHER_PAGE}) as other:
            example = (await asyncio.to_thread(EXAMPLE_PAGE.read_text)).replace(
                "https://talk.example.org", live.url
            )
            # Plus a third origin's frame, and no favicon request (a 404 in the console).
            shop_page = example.replace(
                "</body>", f'<iframe src="{other}/other"></iframe></body>'
            ).replace("<head>", '<head><link rel="icon" href="data:,">')
            async with site({"/": shop_page}) as shop, chromium() as browser:
                await add_shop_link(live, shop)
                page = await browser.new_page(viewport={"width": 1100, "height": 800})
                page.set_default_timeout(UI_TIMEOUT_MS)
                # Console errors of every frame (a refused postMessage target would be one).
                errors: list[str] = []
                page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
                await page.goto(shop)
                await page.wait_for_function(
                    'typeof voiceRelayWidget?.tools?.show_product === "function"'
                )
                await page.evaluate(GATE_HANDLER)
                await page.locator("[data-voice-relay-widget] .launcher").click()
                frame = page.frame_locator("[data-voice-relay-widget] iframe")
                await frame.get_by_role("button", name="Start conversation").click()
                await type_message(frame, "Show me the red shoes")
                await page.wait_for_function("window.calls.length === 1")
                call = await page.evaluate("window.calls[0]")
                assert call == {"call_id": "call_1", "name": "show_product", "arguments": ARGUMENTS}
                await expect(frame.locator(".msg--tool")).to_have_text("Calling show_product…")

                # The third origin's frame cannot make the host page run a tool.
                other_frame = next(f for f in page.frames if f.url.startswith(other))
                await other_frame.evaluate("forgeCall()")
                # Nor can anyone but the host page answer the call for it.
                embed = next(f for f in page.frames if f.url.startswith(f"{live.url}/embed/"))
                await embed.evaluate(FORGE_RESULTS, [other, shop])
                await page.wait_for_timeout(1000)
                assert model.outputs() == []
                assert await page.evaluate("window.calls.length") == 1

                await page.evaluate("openGate()")
                [output] = await model.wait_for_outputs(1)
                await expect(frame.locator(".msg--tool")).to_have_text("Called show_product")
                await expect(frame.locator(".msg--assistant .msg__text")).to_contain_text("Done:")
                await page.screenshot(path=artifact("widget-tools.png"))
                shown = page.locator('.product[data-sku="red-shoes"][data-shown]')
                await expect(shown).to_have_count(1)

                # A host that does not answer in time: the model gets an error result.
                await embed.evaluate("voiceRelay.client.toolTimeoutMs = 500")
                await page.evaluate("window.hang = true")
                await type_message(frame, "And the blue hat?")
                _, late = await model.wait_for_outputs(2)
                failed = frame.locator(".msg--tool").nth(1)
                await expect(failed).to_have_text("show_product failed")
    expected = {"shown": "red-shoes", "name": "Red shoes", "price": "€59"}
    assert json.loads(output) == expected
    assert "the page did not answer within 0.5 s" in json.loads(late)["error"]
    assert errors == []


async def test_talk_page_tool_callback_and_json_export() -> None:
    async with (
        tool_model() as model,
        live_app(backend_url=model.url, tools=[SHOW_PRODUCT], **STEPFUN) as live,
        open_talk(live.url) as talk,
    ):
        page = talk.page
        await page.evaluate(
            """() => { voiceRelay.onToolCall = (call) => ({ shown: call.arguments.sku }); }"""
        )
        await talk.start_listening()
        await type_message(page, "Show me the red shoes")
        [output] = await model.wait_for_outputs(1)
        tool = page.locator(".msg--tool")
        await expect(tool).to_have_text("Called show_product")
        await expect(tool).to_have_attribute("data-status", "done")
        await expect(page.locator(".msg--assistant .msg__text")).to_contain_text("Done:")
        async with page.expect_download() as download_info:
            await page.get_by_role("button", name="Download JSON").click()
        download = await download_info.value
        exported = json.loads(await asyncio.to_thread(Path(await download.path()).read_text))
        text = await page.evaluate("voiceRelay.log.toText()")
        talk.assert_no_errors()
    assert json.loads(output) == {"shown": "red-shoes"}
    [entry] = [e for e in exported["entries"] if e["role"] == "tool"]
    assert entry["text"] == "Called show_product"
    assert entry["tool"] == {
        "call_id": "call_1",
        "name": "show_product",
        "kind": "client",
        "status": "done",
        "arguments": ARGUMENTS,
        "output": {"shown": "red-shoes"},
    }
    assert 'Tool: Called show_product {"sku":"red-shoes"} -> {"shown":"red-shoes"}' in text


async def test_talk_page_without_an_answer_gives_the_model_an_error() -> None:
    async with (
        tool_model() as model,
        live_app(backend_url=model.url, tools=[SHOW_PRODUCT], **STEPFUN) as live,
        open_talk(live.url) as talk,
    ):
        page = talk.page
        await talk.start_listening()
        await type_message(page, "Show me the red shoes")
        [no_handler] = await model.wait_for_outputs(1)
        await expect(page.locator(".msg--tool")).to_have_text("show_product failed")
        # A handler that never answers is given up on after the page's time limit.
        await page.evaluate(
            """() => {
                voiceRelay.client.toolTimeoutMs = 300;
                voiceRelay.onToolCall = () => new Promise(() => {});
            }"""
        )
        await type_message(page, "And now?")
        _, silent = await model.wait_for_outputs(2)
        await expect(page.locator(".msg--tool").nth(1)).to_have_text("show_product failed")
        exported = await page.evaluate("voiceRelay.log.toJSON()")
    assert "no handler for the client tool show_product" in json.loads(no_handler)["error"]
    assert "did not answer within 0.3 s" in json.loads(silent)["error"]
    errors = [e["tool"]["error"] for e in exported["entries"] if e["role"] == "tool"]
    assert errors == [json.loads(no_handler)["error"], json.loads(silent)["error"]]


async def test_talk_page_shows_a_web_search_while_it_runs() -> None:
    tools = [WebSearchTool(kind="web_search"), SHOW_PRODUCT]
    async with (
        tool_model() as model,
        live_app(backend_url=model.url, tools=tools, **STEPFUN) as live,
        open_talk(live.url) as talk,
    ):
        page = talk.page
        await talk.start_listening()
        await type_message(page, "search the web for shoes")
        tool = page.locator(".msg--tool")
        await expect(tool).to_have_text("Searching the web…")
        await expect(tool).to_have_attribute("data-status", "started")
        await expect(tool).to_have_text("Searched the web")
        await page.locator("#language").select_option("zh")
        await expect(tool).to_have_text("已联网搜索")
        exported = await page.evaluate("voiceRelay.log.toJSON()")
        talk.assert_no_errors()
    assert model.outputs() == []  # StepFun runs its built-ins itself
    [entry] = [e["tool"] for e in exported["entries"] if e["role"] == "tool"]
    assert entry == {
        "call_id": "call_1",
        "name": "web_search",
        "kind": "web_search",
        "status": "done",
    }


async def add_shop_link(live: LiveServer, origin: str) -> None:
    await live.app.state.links.create(
        LinkCreate(
            slug="shop",
            title="Shop helper",
            persona=Persona(instructions="You are Sam."),
            allowed_origins=[origin],
            tools=[SHOW_PRODUCT],
        )
    )


async def type_message(where: Any, text: str) -> None:
    """Type `text` into the talk UI of a page or frame once the conversation is live."""
    target: FrameLocator = where
    box = target.get_by_role("textbox", name="Message")
    await expect(box).to_be_enabled(timeout=UI_TIMEOUT_MS)
    await box.fill(text)
    await box.press("Enter")
