"""Turns, the session's turn-taking logic, driven event by event with no peer and no socket.

Pins: barge-in before the first audio, during playout and after it (flush, response.cancel,
conversation.item.truncate at the ms actually sent); late deltas and transcripts of a cancelled
response or item dropped; typed text during a reply; cumulative (StepFun) and incremental
(OpenAI) user transcripts; latency from where the user stopped speaking to the first audio
sent; backend errors right after our cancel kept from the page. Events of any shape, redaction
and error floods: tests/test_turns_robustness.py.
"""

from __future__ import annotations

import pytest

from protocol.audio import BYTES_PER_MS
from protocol.events import ClientEvent, ServerEvent
from relay.actions import (
    AnalyzeUtterance,
    FlushPlayout,
    PlayAudio,
    ShowState,
    StartUtterance,
)
from relay.events import State
from relay.playout import ItemPlayout
from relay.policy import Interrupt, TextMessage
from relay.turns import Turns

from .turns_support import (
    CANCEL,
    SPEECH_STARTED,
    Playout,
    audio_delta,
    created,
    model_events,
    page_events,
    turns,
)

pytestmark = pytest.mark.unit


def test_turns_barge_in_during_playout_cancels_and_truncates_at_what_was_sent() -> None:
    playout = Playout()
    logic = turns(playout)
    logic.server_event(created("resp_1"), 0.0)
    assert logic.server_event(audio_delta("resp_1", "item_1"), 0.1) == [
        PlayAudio("item_1", bytes(100 * BYTES_PER_MS))
    ]
    logic.item_started("item_1", 0.2)
    playout.play("item_1", received_ms=3000, sent_ms=1200)

    actions = logic.server_event(SPEECH_STARTED, 1.4)

    assert actions[:2] == [StartUtterance(), FlushPlayout()]
    assert actions[-1] == ShowState(State.USER_SPEAKING)
    truncate = {
        "type": ClientEvent.ITEM_TRUNCATE,
        "item_id": "item_1",
        "content_index": 0,
        "audio_end_ms": 1200,
    }
    assert model_events(actions) == [CANCEL, truncate]
    assert page_events(actions) == [{"type": "interrupted", "item_id": "item_1", "played_ms": 1200}]
    assert logic.stats.interruptions == 1


def test_turns_truncate_never_claims_more_than_was_received() -> None:
    playout = Playout()
    logic = turns(playout)
    logic.server_event(created("resp_1"), 0.0)
    logic.server_event(audio_delta("resp_1", "item_1"), 0.1)
    logic.item_started("item_1", 0.2)
    # Everything received went out and the model is still speaking: an underrun.
    playout.play("item_1", received_ms=800, sent_ms=800)
    (truncate,) = [e for e in model_events(logic.interrupt(1.0)) if e["type"] != CANCEL["type"]]
    assert truncate["audio_end_ms"] == 800


def test_turns_barge_in_before_the_first_audio_cancels_without_truncating() -> None:
    playout = Playout()
    logic = turns(playout)
    logic.server_event(created("resp_1"), 0.0)
    logic.server_event(audio_delta("resp_1", "item_1"), 0.1)
    playout.items["item_1"] = ItemPlayout("item_1", received_bytes=100 * BYTES_PER_MS)
    playout.is_playing = True  # queued, but no frame of it has gone out yet

    actions = logic.server_event(SPEECH_STARTED, 0.2)

    assert FlushPlayout() in actions
    assert model_events(actions) == [CANCEL]
    assert page_events(actions, "interrupted") == []
    assert logic.stats.interruptions == 1
    # The cancelled response's audio that is still on its way is never played.
    assert logic.server_event(audio_delta("resp_1", "item_1"), 0.3) == []
    assert logic.stats.late_deltas_dropped == 1


def test_turns_barge_in_before_the_next_reply_leaves_the_finished_one_alone() -> None:
    playout = Playout()
    logic = turns(playout)
    logic.server_event(created("resp_1"), 0.0)
    logic.server_event(audio_delta("resp_1", "item_1"), 0.1)
    logic.item_started("item_1", 0.2)
    logic.server_event({"type": ServerEvent.RESPONSE_DONE, "response": {"id": "resp_1"}}, 0.3)
    playout.play("item_1", received_ms=100, sent_ms=100)
    logic.server_event(created("resp_2"), 1.0)
    logic.server_event(audio_delta("resp_2", "item_2"), 1.1)
    playout.items["item_2"] = ItemPlayout("item_2", received_bytes=100 * BYTES_PER_MS)
    playout.is_playing = True  # item_2 queued; item_1 is still the last item played

    actions = logic.server_event(SPEECH_STARTED, 1.2)

    assert model_events(actions) == [CANCEL]
    assert page_events(actions, "interrupted") == []


def test_turns_speech_after_playout_interrupts_nothing() -> None:
    playout = Playout()
    logic = turns(playout)
    logic.server_event(created("resp_1"), 0.0)
    logic.server_event(audio_delta("resp_1", "item_1"), 0.1)
    logic.item_started("item_1", 0.2)
    logic.server_event({"type": ServerEvent.RESPONSE_DONE, "response": {"id": "resp_1"}}, 0.3)
    playout.play("item_1", received_ms=100, sent_ms=100)
    assert logic.drained() == [ShowState(State.LISTENING)]

    actions = logic.server_event(SPEECH_STARTED, 2.0)

    assert actions == [StartUtterance(), FlushPlayout(), ShowState(State.USER_SPEAKING)]
    assert logic.stats.interruptions == 0
    # While the user speaks, a drained playout does not claim the floor back.
    assert logic.drained() == []


def test_turns_drop_late_deltas_and_transcripts_of_a_truncated_item() -> None:
    playout = Playout()
    logic = turns(playout)
    logic.server_event(created("resp_1"), 0.0)
    logic.server_event(audio_delta("resp_1", "item_1"), 0.1)
    logic.item_started("item_1", 0.2)
    playout.play("item_1", received_ms=2000, sent_ms=500)
    logic.server_event(SPEECH_STARTED, 0.7)

    late_text = {"type": ServerEvent.AUDIO_TRANSCRIPT_DELTA, "item_id": "item_1", "delta": "and"}
    done = {"type": ServerEvent.AUDIO_TRANSCRIPT_DONE, "item_id": "item_1", "transcript": "x"}
    # Matched by item as well as by response: a delta that names only the item is dropped too.
    late_audio = audio_delta("resp_1", "item_1") | {"response_id": None}
    assert logic.server_event(late_text, 0.8) == []
    assert logic.server_event(done, 0.9) == []
    assert logic.server_event(late_audio, 0.9) == []
    # The next response plays.
    logic.server_event(created("resp_2"), 1.0)
    assert logic.server_event(audio_delta("resp_2", "item_2"), 1.1) != []


def test_turns_typed_text_during_a_reply_interrupts_it_then_asks_for_an_answer() -> None:
    playout = Playout()
    logic = turns(playout)
    logic.server_event(created("resp_1"), 0.0)
    logic.server_event(audio_delta("resp_1", "item_1"), 0.1)
    logic.item_started("item_1", 0.2)
    playout.play("item_1", received_ms=3000, sent_ms=600)

    actions = logic.page_message(TextMessage("What time is it?"), 0.8)

    kinds = [e["type"] for e in model_events(actions)]
    assert kinds == [
        ClientEvent.RESPONSE_CANCEL,
        ClientEvent.ITEM_TRUNCATE,
        ClientEvent.ITEM_CREATE,
    ]
    # The answer is asked for once the cancelled response has ended (tests/test_stepfun.py).
    done = {"type": ServerEvent.RESPONSE_DONE, "response": {"id": "resp_1"}}
    assert [e["type"] for e in model_events(logic.server_event(done, 0.9))] == [
        ClientEvent.RESPONSE_CREATE
    ]
    item = model_events(actions)[2]["item"]
    assert item == {
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": "What time is it?"}],
    }
    assert page_events(actions, "transcript") == [
        {
            "type": "transcript",
            "role": "user",
            "item_id": None,
            "text": "What time is it?",
            "final": True,
        }
    ]
    # Latency of a typed turn counts from the moment it was sent.
    logic.item_started("item_2", 1.3)
    assert logic.stats.latencies_ms == [pytest.approx(500)]


def test_turns_page_interrupt_is_a_barge_in() -> None:
    playout = Playout()
    logic = turns(playout)
    logic.server_event(created("resp_1"), 0.0)
    actions = logic.page_message(Interrupt(), 0.1)
    assert actions[0] == FlushPlayout()
    assert model_events(actions) == [CANCEL]


@pytest.mark.parametrize(
    ("cumulative", "deltas", "texts"),
    [
        (True, ["Hel", "Hello", "Hello there"], ["Hel", "Hello", "Hello there"]),
        (False, ["Hel", "lo", " there"], ["Hel", "Hello", "Hello there"]),
    ],
)
def test_turns_user_transcripts_cumulative_and_incremental(
    cumulative: bool, deltas: list[str], texts: list[str]
) -> None:
    logic = turns(Playout(), cumulative=cumulative)
    shown = []
    for delta in deltas:
        event = {"type": ServerEvent.INPUT_TRANSCRIPT_DELTA, "item_id": "u1", "delta": delta}
        (page,) = page_events(logic.server_event(event, 0.0))
        shown.append(page["text"])
        assert page["role"] == "user" and page["item_id"] == "u1" and not page["final"]
    assert shown == texts
    done = {
        "type": ServerEvent.INPUT_TRANSCRIPT_DONE,
        "item_id": "u1",
        "transcript": "Hello there.",
    }
    (final,) = page_events(logic.server_event(done, 0.0))
    assert (final["text"], final["final"]) == ("Hello there.", True)


def test_turns_assistant_transcript_adds_up_and_done_without_text_keeps_it() -> None:
    logic = turns(Playout())
    for delta in ("Hi", ", friend"):
        event = {"type": ServerEvent.TEXT_DELTA, "item_id": "a1", "delta": delta}
        (page,) = page_events(logic.server_event(event, 0.0))
    assert page["text"] == "Hi, friend"
    (final,) = page_events(logic.server_event({"type": ServerEvent.TEXT_DONE, "item_id": "a1"}, 0))
    assert (final["text"], final["final"], final["role"]) == ("Hi, friend", True, "assistant")


def test_turns_latency_counts_from_where_the_user_stopped_speaking() -> None:
    placed: list[float] = []

    def speech_end(audio_end_ms: float) -> float | None:
        placed.append(audio_end_ms)
        return 10.0  # the uplink audio at that offset arrived at t = 10 s

    logic = Turns(Playout(), cumulative_user_transcripts=False, speech_end=speech_end)
    logic.server_event(SPEECH_STARTED, 9.0)
    stopped = {"type": ServerEvent.SPEECH_STOPPED, "audio_end_ms": 2500, "item_id": "u1"}
    actions = logic.server_event(stopped, 10.5)
    assert actions == [AnalyzeUtterance("u1"), ShowState(State.LISTENING)]
    assert placed == [2500]

    started = logic.item_started("item_1", 10.8)

    assert started[0] == ShowState(State.ASSISTANT_SPEAKING)
    assert page_events(started) == [{"type": "latency", "turn": 1, "ms": 800.0}]
    assert logic.stats.turns == 1
    # Only the first audio of the turn counts.
    assert page_events(logic.item_started("item_2", 11.5)) == []


def test_turns_latency_falls_back_to_the_event_time() -> None:
    logic = turns(Playout())  # no uplink timeline: the end of turn is when the event came
    logic.server_event({"type": ServerEvent.SPEECH_STOPPED, "audio_end_ms": 900}, 5.0)
    (latency,) = page_events(logic.item_started("item_1", 5.25))
    assert latency["ms"] == 250.0


def test_turns_backend_errors_after_our_cancel_are_not_shown() -> None:
    logic = turns(Playout())
    logic.server_event(created("resp_1"), 0.0)
    logic.interrupt(1.0)
    race = {"type": ServerEvent.ERROR, "error": {"message": "no active response"}}
    assert logic.server_event(race, 1.5) == []
    later = {"type": ServerEvent.ERROR, "error": {"message": "rate limited", "code": "x"}}
    (error,) = page_events(logic.server_event(later, 3.5))
    assert error == {"type": "error", "code": "backend_error", "detail": "rate limited"}
