"""Turns against backends that misbehave: deltas that are not audio, events of any JSON shape
ignored and counted by kind (never raised), each kind logged once, the key redacted from
backend error text, and a flood of errors shown to the page only a few times.
"""

from __future__ import annotations

import base64

import pytest

from protocol.audio import BYTES_PER_MS
from protocol.events import Event, ServerEvent
from relay.actions import (
    PlayAudio,
)
from relay.backends.client import redact
from relay.turns import ERRORS_SHOWN_BURST, UNTYPED, Turns

from .turns_support import Playout, audio_delta, created, page_events, turns

pytestmark = pytest.mark.unit


def test_turns_ignore_an_audio_delta_that_is_not_base64() -> None:
    logic = turns(Playout())
    logic.server_event(created("resp_1"), 0.0)
    bad = audio_delta("resp_1", "item_1") | {"delta": "not base64!"}
    assert logic.server_event(bad, 0.1) == []
    odd = audio_delta("resp_1", "item_1") | {"delta": base64.b64encode(b"abc").decode()}
    assert logic.server_event(odd, 0.1) == [PlayAudio("item_1", b"ab")]  # whole samples only


# Fields of the wrong type, as a buggy or hostile backend might send them.
MALFORMED: list[tuple[Event, str]] = [
    ({"type": ["response.audio.delta"]}, UNTYPED),
    ({"type": 7, "delta": "AAAA"}, UNTYPED),
    ({"delta": "AAAA"}, UNTYPED),
    ({"type": ServerEvent.RESPONSE_CREATED, "response": "resp_9"}, ServerEvent.RESPONSE_CREATED),
    (
        {"type": ServerEvent.RESPONSE_CREATED, "response": {"id": ["x"]}},
        ServerEvent.RESPONSE_CREATED,
    ),
    ({"type": ServerEvent.RESPONSE_DONE, "response": 3}, ServerEvent.RESPONSE_DONE),
    ({"type": ServerEvent.AUDIO_TRANSCRIPT_DELTA, "delta": 42}, ServerEvent.AUDIO_TRANSCRIPT_DELTA),
    (
        {"type": ServerEvent.AUDIO_TRANSCRIPT_DONE, "transcript": {}},
        ServerEvent.AUDIO_TRANSCRIPT_DONE,
    ),
    ({"type": ServerEvent.TEXT_DELTA, "delta": "hi", "item_id": {"a": 1}}, ServerEvent.TEXT_DELTA),
    (
        {"type": ServerEvent.INPUT_TRANSCRIPT_DELTA, "delta": None, "item_id": []},
        ServerEvent.INPUT_TRANSCRIPT_DELTA,
    ),
    (
        {"type": ServerEvent.INPUT_TRANSCRIPT_DONE, "transcript": 1.5},
        ServerEvent.INPUT_TRANSCRIPT_DONE,
    ),
    ({"type": ServerEvent.SPEECH_STOPPED, "item_id": ["i"]}, ServerEvent.SPEECH_STOPPED),
    ({"type": ServerEvent.AUDIO_DELTA, "delta": 12345}, ServerEvent.AUDIO_DELTA),
    ({"type": ServerEvent.AUDIO_DELTA, "delta": "AAAA", "item_id": ["i"]}, ServerEvent.AUDIO_DELTA),
    (
        {"type": ServerEvent.AUDIO_DELTA, "delta": "AAAA", "response_id": {}},
        ServerEvent.AUDIO_DELTA,
    ),
    ({"type": ServerEvent.AUDIO_DELTA, "delta": "not base64!"}, ServerEvent.AUDIO_DELTA),
]


@pytest.mark.parametrize(("event", "kind"), MALFORMED)
def test_turns_ignore_and_count_events_they_cannot_use(event: Event, kind: str) -> None:
    logic = turns(Playout())
    logic.server_event(created("resp_1"), 0.0)
    assert logic.server_event(event, 0.1) == []
    assert logic.server_event(event, 0.2) == []
    assert logic.stats.ignored_events == {kind: 2}
    # The conversation goes on: the next good delta plays.
    assert logic.server_event(audio_delta("resp_1", "item_1"), 0.3) == [
        PlayAudio("item_1", bytes(100 * BYTES_PER_MS))
    ]


def test_turns_log_each_kind_of_ignored_event_once(caplog: pytest.LogCaptureFixture) -> None:
    logic = turns(Playout())
    for now in range(5):
        logic.server_event({"type": ServerEvent.RESPONSE_CREATED, "response": "x"}, now)
        logic.server_event({"type": None}, now)
    ignored = [r for r in caplog.records if "ignored a backend event" in r.getMessage()]
    assert len(ignored) == 2
    assert logic.stats.ignored_events.total() == 10


def test_turns_redact_the_key_from_backend_errors(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    key = "sk-live-0123456789"
    logic = Turns(
        Playout(), cumulative_user_transcripts=False, redact=lambda text: redact(text, key)
    )
    echoed = {"type": ServerEvent.ERROR, "error": {"message": f"bad key Bearer {key}!"}}
    (error,) = page_events(logic.server_event(echoed, 10.0))
    assert error["detail"] == "bad key Bearer [redacted]!"
    just_key = {"type": ServerEvent.ERROR, "error": {"message": key}}
    assert page_events(logic.server_event(just_key, 20.0))[0]["detail"] == "[redacted]"
    logic.server_event(created("resp_1"), 29.0)
    logic.interrupt(30.0)
    assert logic.server_event(echoed, 30.5) == []  # a race after our cancel: logged only
    assert caplog.records and not [r for r in caplog.records if key in r.getMessage()]


def test_turns_show_a_flood_of_backend_errors_a_few_times() -> None:
    logic = turns(Playout())
    error = {"type": ServerEvent.ERROR, "error": {"message": "overloaded"}}
    shown = [page_events(logic.server_event(error, 10.0 + i / 1000)) for i in range(1000)]
    assert sum(map(len, shown)) == ERRORS_SHOWN_BURST
    assert logic.stats.errors_not_shown == 1000 - ERRORS_SHOWN_BURST
    assert page_events(logic.server_event(error, 20.0))  # a second later one gets through
