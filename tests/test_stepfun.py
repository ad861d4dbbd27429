"""StepFun as its realtime reference documents it, against local servers that behave the same way.

Pins: a documented voice per model when none is configured (and step-audio-2-mini's required
closing line); the session counts as started only once `session.updated` confirms it, and a
refused update reaches the page as `backend_rejected_session` before any `listening`; typed text
during a reply waits for the cancelled response's `response.done` and gets its answer (StepFun
refuses a second response with "ongoing response already exists"); an error caused by the
page's own request is never hidden; the greeting is a `response.create` asking for the line;
audio deltas without `response_id` of a cancelled response are dropped; truncate names the audio
part's content index; region URLs; knobs validated and sent; thinking reaches only the debug
view; notes for models that need care are logged.
"""

from __future__ import annotations

import base64
import dataclasses
import logging
from typing import Any

import pytest
from aiortc import RTCSessionDescription
from pydantic import ValidationError

from protocol.audio import BYTES_PER_MS
from protocol.events import ClientEvent, Event, ServerEvent
from relay.actions import SendToModel, SendToPage, Wake
from relay.backends import BackendConfig, RealtimeClient, dialect_for
from relay.backends.client import BackendRejected
from relay.backends.stepfun import StepFunDialect
from relay.policy import TextMessage
from relay.turns import Turns
from web.backend import backend_config
from web.links import DemoLink, Persona
from web.settings import Settings

from .conftest import live_app, wait_until
from .media import ClientPeer, SpeechTrack
from .realtime_server import recording_server
from .speech import tone
from .test_turns import Playout, audio_delta, created, model_events, page_events

KEY = {"stepfun_api_key": "sk-test-stepfun"}
REJECTED = "voice nosuchvoice is not valid"


def stepfun(model: str = "stepaudio-2.5-realtime", **fields: Any) -> BackendConfig:
    return BackendConfig("stepfun", fields.pop("url", ""), model, api_key="sk-x", **fields)


async def session_update(config: BackendConfig) -> Event:
    async with recording_server("stepfun") as server:
        config = dataclasses.replace(config, url=server.url)
        client = RealtimeClient(config, dialect_for("stepfun"))
        await client.connect()
        update = await server.wait_for("session.update")
        await client.close()
    return update["session"]


# -- session.update -------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize(
    ("model", "voice"),
    [
        ("stepaudio-2.5-realtime", "linjiajiejie"),
        ("step-1o-audio", "linjiajiejie"),
        ("step-audio-2", "qingchunshaonv"),
        ("step-audio-r1.1", "qingchunshaonv"),
        ("some-future-model", "linjiajiejie"),
    ],
)
async def test_a_documented_voice_is_sent_when_none_is_configured(model: str, voice: str) -> None:
    session = await session_update(stepfun(model))
    assert session["voice"] == voice


@pytest.mark.integration
async def test_step_audio_2_mini_gets_the_closing_line_its_voice_needs() -> None:
    female = await session_update(stepfun("step-audio-2-mini", instructions="Be brief."))
    assert female["voice"] == "qingchunshaonv"
    assert female["instructions"] == "Be brief.\n请使用默认女声与用户交流"
    male = await session_update(stepfun("step-audio-2-mini", voice="wenrounansheng"))
    assert male["instructions"] == "请使用默认男声与用户交流"


@pytest.mark.integration
async def test_knobs_are_sent_where_stepfun_documents_them() -> None:
    config = stepfun(temperature=0.6, max_output_tokens=300, energy_awakeness_threshold=4000)
    session = await session_update(config)
    assert session["temperature"] == 0.6
    assert session["max_response_output_tokens"] == 300
    assert session["turn_detection"]["energy_awakeness_threshold"] == 4000
    plain = await session_update(stepfun())
    assert plain["turn_detection"]["energy_awakeness_threshold"] == 2500  # StepFun's default
    assert "temperature" not in plain and "max_response_output_tokens" not in plain


def test_knobs_are_validated_for_links_and_settings() -> None:
    with pytest.raises(ValidationError):
        Persona(temperature=3.5)
    with pytest.raises(ValidationError):
        Persona(max_output_tokens=0)
    with pytest.raises(ValidationError):
        Persona(energy_awakeness_threshold=5001)
    with pytest.raises(ValidationError):
        Settings(energy_awakeness_threshold=-1, backend="local")
    with pytest.raises(ValidationError):
        Settings(stepfun_region="eu", backend="local")


def test_link_knobs_and_the_region_reach_the_backend_config() -> None:
    settings = Settings(backend="stepfun", stepfun_region="intl", temperature=0.7, **KEY)
    assert backend_config(settings).temperature == 0.7
    persona = Persona(max_output_tokens=200, energy_awakeness_threshold=3500)
    link = DemoLink(slug="shop", title="Shop", persona=persona)
    config = backend_config(settings, link)
    assert (config.temperature, config.max_output_tokens) == (None, 200)  # never inherited
    assert config.energy_awakeness_threshold == 3500
    assert config.region == "intl"
    url = StepFunDialect().connect_url(config)
    assert url == "wss://api.stepfun.ai/v1/realtime?model=stepaudio-2.5-realtime"


def test_region_urls_and_the_override() -> None:
    dialect = StepFunDialect()
    assert dialect.connect_url(stepfun()).startswith("wss://api.stepfun.com/v1/realtime?")
    assert dialect.connect_url(stepfun(region="intl")).startswith("wss://api.stepfun.ai/v1/")
    plan = "wss://api.stepfun.com/step_plan/v1/realtime"
    assert dialect.connect_url(stepfun(region="intl", url=plan)).startswith(plan + "?model=")


def test_greeting_is_a_response_create_asking_for_the_configured_line() -> None:
    config = stepfun(instructions="You are Sam.", greeting="Hi, I am Sam!")
    event = StepFunDialect().greeting_event(config)
    assert event is not None and event["type"] == ClientEvent.RESPONSE_CREATE
    instructions = event["response"]["instructions"]
    assert instructions.startswith("You are Sam.\n\n")  # the persona stays for this response
    assert instructions.endswith("saying exactly this, and nothing else: Hi, I am Sam!")
    assert StepFunDialect().greeting_event(stepfun()) is None


def test_notes_for_models_that_need_care(caplog: pytest.LogCaptureFixture) -> None:
    dialect = StepFunDialect()
    assert dialect.notes(stepfun()) == []
    assert any("thinking model" in note for note in dialect.notes(stepfun("step-audio-r1.5")))
    (mini,) = dialect.notes(stepfun("step-audio-2-mini", voice="linjiajiejie"))[1:]
    assert "not one it takes" in mini
    (intl,) = dialect.notes(stepfun(region="intl"))
    assert "international" in intl


# -- session.updated ------------------------------------------------------------------------


@pytest.mark.integration
async def test_the_client_is_ready_only_after_session_updated_and_a_refusal_raises() -> None:
    async with recording_server("stepfun", reject_updates_with=REJECTED) as server:
        client = RealtimeClient(
            stepfun(url=server.url, voice="nosuchvoice"), dialect_for("stepfun")
        )
        with pytest.raises(BackendRejected, match="^voice nosuchvoice is not valid$"):
            await client.connect()
        assert not client.ready
    async with recording_server("stepfun") as server:
        client = RealtimeClient(stepfun(url=server.url), dialect_for("stepfun"))
        await client.connect()
        assert client.ready
        first = await anext(client.events())
        assert first["type"] == ServerEvent.SESSION_UPDATED  # still handed on to the session
        await client.close()


def states(client: ClientPeer) -> list[str]:
    return [e["state"] for e in client.events_of("state")]


@pytest.mark.integration
@pytest.mark.parametrize("delay_s", [0.0, 1.5])
async def test_a_refused_session_update_reaches_the_page_before_listening(delay_s: float) -> None:
    async with (
        recording_server(
            "stepfun", reject_updates_with=REJECTED, reject_delay_s=delay_s
        ) as backend,
        live_app(backend="stepfun", backend_url=backend.url, voice="nosuchvoice", **KEY) as live,
        live.http() as http,
    ):
        client = ClientPeer(SpeechTrack(tone(3000)))
        offer = await client.offer()
        answer = await http.post("/api/sessions", json={"sdp": offer.sdp, "type": offer.type})
        if delay_s == 0.0 and answer.status_code == 502:  # refused before the answer was sent
            assert answer.json()["error"] == {
                "code": "backend_rejected_session",
                "message": REJECTED,
            }
            await client.close()
            return
        assert answer.status_code == 201, answer.text
        body = answer.json()
        client.session_id = body["session_id"]
        await client.pc.setRemoteDescription(RTCSessionDescription(body["sdp"], body["type"]))
        await wait_until(lambda: client.events_of("ended"), timeout_s=10)
        await client.close()
    (error,) = client.events_of("error")
    assert error == {"type": "error", "code": "backend_rejected_session", "detail": REJECTED}
    assert "listening" not in states(client)
    assert client.events_of("ended") == [{"type": "ended", "reason": "backend_error"}]


# -- typed text during a reply ---------------------------------------------------------------


@pytest.mark.integration
async def test_typed_text_during_a_reply_gets_its_answer_and_no_hidden_error() -> None:
    async with (
        recording_server("stepfun", cancel_delay_s=0.4) as backend,
        live_app(backend="stepfun", backend_url=backend.url, **KEY) as live,
        live.http() as http,
    ):
        client = ClientPeer(SpeechTrack())
        await client.connect(http)
        await wait_until(lambda: "listening" in states(client), timeout_s=10)
        await backend.start_response("resp_1")
        await backend.send_audio("resp_1", "item_1", tone(3000))
        await backend.wait_for("session.update")
        session = live.registry.get(client.session_id or "")
        await wait_until(lambda: session.playout.item("item_1") is not None)

        client.send({"type": "text", "text": "What time is it?"})
        await backend.wait_for("response.create", timeout_s=5)
        await client.close()

    kinds = [e["type"] for e in backend.received if e["type"] != "input_audio_buffer.append"]
    assert kinds[-4:] == [
        "response.cancel",
        "conversation.item.truncate",
        "conversation.item.create",
        "response.create",
    ]
    assert backend.responses == 1  # the server answered the typed text with a response
    assert not client.events_of("error")


def text_turns() -> tuple[Turns, Playout]:
    playout = Playout()
    return Turns(playout, cumulative_user_transcripts=True), playout


def test_typed_text_is_answered_after_the_timer_if_no_response_done_comes() -> None:
    logic, _ = text_turns()
    logic.server_event(created("resp_1"), 0.0)
    actions = logic.page_message(TextMessage("hello"), 1.0)
    assert Wake(2.0) in actions
    assert not [e for e in model_events(actions) if e["type"] == ClientEvent.RESPONSE_CREATE]
    assert logic.wake(2.5) == []  # too early
    (create,) = model_events(logic.wake(3.0))
    assert create["type"] == ClientEvent.RESPONSE_CREATE
    assert model_events(logic.wake(4.0)) == []  # once


def test_an_error_caused_by_the_pages_request_is_shown_even_right_after_a_cancel() -> None:
    logic, _ = text_turns()
    logic.server_event(created("resp_1"), 0.0)
    logic.interrupt(1.0)
    done = {"type": ServerEvent.RESPONSE_DONE, "response": {"id": "resp_1"}}
    logic.server_event(done, 1.1)
    actions = logic.page_message(TextMessage("hello"), 1.2)
    create = [e for e in model_events(actions) if e["type"] == ClientEvent.RESPONSE_CREATE][0]
    race = {"type": ServerEvent.ERROR, "error": {"message": "no active response"}}
    error = {"message": "ongoing response already exists", "event_id": create["event_id"]}
    shown = page_events(logic.server_event({"type": ServerEvent.ERROR, "error": error}, 1.3))
    assert shown == [
        {"type": "error", "code": "backend_error", "detail": "ongoing response already exists"}
    ]
    assert logic.server_event(race, 1.4) == []  # an error of our own cancel stays hidden


# -- barge-in --------------------------------------------------------------------------------


def delta(item_id: str, ms: int = 100, **fields: Any) -> Event:
    pcm = base64.b64encode(bytes(ms * BYTES_PER_MS)).decode()
    return {"type": ServerEvent.AUDIO_DELTA, "item_id": item_id, "delta": pcm, **fields}


def test_late_deltas_without_response_id_of_a_cancelled_response_are_dropped() -> None:
    logic, playout = text_turns()
    logic.server_event(created("resp_1"), 0.0)
    assert logic.server_event(delta("item_1"), 0.1)  # StepFun's deltas name only the item
    logic.item_started("item_1", 0.2)
    playout.play("item_1", received_ms=100, sent_ms=100)  # all of it heard already
    cancel, truncate = model_events(logic.interrupt(0.5))
    assert cancel == {"type": ClientEvent.RESPONSE_CANCEL}
    assert truncate["item_id"] == "item_1"  # its item is known without a response_id

    assert logic.server_event(delta("item_1"), 0.6) == []
    assert logic.server_event(delta("item_2"), 0.7) == []  # no new response yet: still late
    assert logic.stats.late_deltas_dropped == 2
    logic.server_event(created("resp_2"), 0.8)
    assert logic.server_event(delta("item_3"), 0.9)  # the new response plays


def test_truncate_names_the_audio_parts_content_index() -> None:
    logic, playout = text_turns()
    logic.server_event(created("resp_1"), 0.0)
    for index, kind in enumerate(["thinking", "audio"]):
        part = {
            "type": ServerEvent.CONTENT_PART_ADDED,
            "response_id": "resp_1",
            "item_id": "item_1",
            "content_index": index,
            "part": {"type": kind},
        }
        logic.server_event(part, 0.05)
    logic.server_event(audio_delta("resp_1", "item_1"), 0.1)
    logic.item_started("item_1", 0.2)
    playout.play("item_1", received_ms=3000, sent_ms=500)
    (truncate,) = [e for e in model_events(logic.interrupt(1.0)) if "content_index" in e]
    assert truncate["content_index"] == 1


def test_thinking_goes_to_the_debug_view_only() -> None:
    logic, _ = text_turns()
    logic.server_event(created("resp_1"), 0.0)
    think = {"type": "response.thinking.delta", "response_id": "resp_1", "item_id": "item_1"}
    first = logic.server_event(think | {"delta": "The user "}, 0.1)
    second = logic.server_event(think | {"delta": "asks."}, 0.2)
    done = {"type": "response.thinking.done", "item_id": "item_1", "thinking": "The user asks."}
    last = logic.server_event(done, 0.3)
    events = [a.event for a in first + second + last if isinstance(a, SendToPage)]
    assert [e["type"] for e in events] == ["thinking"] * 3
    assert events[-1] == {
        "type": "thinking",
        "item_id": "item_1",
        "text": "The user asks.",
        "final": True,
    }
    assert events[1]["text"] == "The user asks."
    assert not [a for a in first + second + last if isinstance(a, SendToModel)]


@pytest.mark.integration
async def test_notes_are_logged_once_when_a_session_starts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="relay.backends.client")
    async with recording_server("stepfun") as server:
        for _ in range(2):
            config = stepfun("step-audio-r1.5", url=server.url, voice="qingchunshaonv")
            client = RealtimeClient(config, dialect_for("stepfun"))
            await client.connect()
            await client.close()
    notes = [r.getMessage() for r in caplog.records if "thinking model" in r.getMessage()]
    assert len(notes) == 1
