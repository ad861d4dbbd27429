"""Turns: who speaks, which reply is live, barge-in, transcripts and latency, as pure logic.

Server events (beta names), page messages and playout callbacks go in with the time they
happened; `Action`s come out, for the session to carry out in order. No I/O, no tasks, no aiortc:
what the playout knows (is it playing, how much of an item it received and sent) is read
through `PlayoutView`, and where the user's speech ended through `speech_end`.

A server event may have any JSON shape: one whose fields cannot be used (a `type` that is not a
string, a `response` that is not an object, a delta that is not text) is ignored and counted in
`TurnStats.ignored_events` by kind; the conversation goes on.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from protocol.events import ClientEvent, Event, ServerEvent, error_message

from .actions import (
    Action,
    AnalyzeUtterance,
    FlushPlayout,
    PlayAudio,
    PlayoutView,
    SendToModel,
    SendToPage,
    ShowState,
    StartUtterance,
    Wake,
)
from .events import (
    ErrorCode,
    State,
    error_event,
    interrupted_event,
    latency_event,
    thinking_event,
    transcript_event,
)
from .policy import Interrupt, PageMessage, RateLimit, TextMessage
from .responses import ResponseLedger
from .transcripts import Transcripts

logger = logging.getLogger(__name__)

BENIGN_ERROR_WINDOW_S = 2.0  # errors this soon after our cancel/truncate are races, not faults
# A backend that repeats an error shows the page a few, not thousands.
ERRORS_SHOWN_PER_S = 1.0
ERRORS_SHOWN_BURST = 3
UNTYPED = "untyped"  # the kind of an event whose `type` is missing or not a string
# A response.create sent before the cancelled response ends is refused by StepFun ("ongoing
# response already exists"): typed text waits this long at most for its response.done.
CANCEL_SETTLE_S = 2.0
PAGE_EVENT_PREFIX = "relay_page_"  # event_id of what we send because the page asked


@dataclass
class TurnStats:
    turns: int = 0
    interruptions: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    late_deltas_dropped: int = 0
    ignored_events: Counter[str] = field(default_factory=Counter)  # by kind
    errors_not_shown: int = 0  # backend errors beyond ERRORS_SHOWN_PER_S


class MalformedEvent(Exception):
    """A field of a server event has a type the turn logic cannot use."""


def _text(event: Event, key: str) -> str | None:
    """A string field, or None when it is absent; any other type makes the event malformed."""
    value = event.get(key)
    if value is None or isinstance(value, str):
        return value
    raise MalformedEvent(key)


def _object(event: Event, key: str) -> dict[str, Any]:
    value = event.get(key)
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    raise MalformedEvent(key)


class Turns:
    """The conversation's turn-taking state machine; every method returns the actions to take."""

    def __init__(
        self,
        playout: PlayoutView,
        *,
        cumulative_user_transcripts: bool,
        speech_end: Callable[[float], float | None] = lambda audio_end_ms: None,
        redact: Callable[[str], str] = lambda text: text,
        label: str = "Turns",
    ) -> None:
        """`speech_end(audio_end_ms)`: when the user stopped speaking, given where the server
        VAD ended the turn in the uplink audio, if known (else the event's time counts).
        `redact(text)`: backend text as it may be shown to the page or logged."""
        self.stats = TurnStats()
        self._playout = playout
        self._cumulative = cumulative_user_transcripts
        self._speech_end = speech_end
        self._redact = redact
        self._label = label
        self._errors_shown = RateLimit(ERRORS_SHOWN_PER_S, ERRORS_SHOWN_BURST)
        self._transcripts = Transcripts()
        self._thinking = Transcripts()
        self._user_speaking = False
        self._turn_end_t: float | None = None
        self._responses = ResponseLedger()
        self._playing_item: str | None = None  # the playout's item, or the last one it played
        self._last_cancel_t = -1e9
        self._page_events = 0
        self._held_create: tuple[Event, float] | None = None  # until the cancel lands
        self._page_create_sent = False  # the page's response.create has no response yet

    def server_event(self, event: Event, now: float) -> list[Action]:
        kind = event.get("type")
        if not isinstance(kind, str):
            self._ignore(UNTYPED, "type")
            return []
        handler = _HANDLERS.get(kind)
        if handler is None:
            return []
        try:
            return handler(self, event, now)
        except MalformedEvent as exc:
            self._ignore(kind, str(exc))
            return []

    def _ignore(self, kind: str, key: str) -> None:
        if kind not in self.stats.ignored_events:
            logger.warning(
                "%s ignored a backend event it cannot use: %s (field %r)", self._label, kind, key
            )
        self.stats.ignored_events[kind] += 1

    def page_message(self, message: PageMessage, now: float) -> list[Action]:
        if isinstance(message, Interrupt):
            return self.interrupt(now)
        assert isinstance(message, TextMessage)
        content = [{"type": "input_text", "text": message.text}]
        item = {"type": "message", "role": "user", "content": content}
        self._turn_end_t = now
        actions = [
            *self.interrupt(now),
            SendToModel(self._page_event({"type": ClientEvent.ITEM_CREATE, "item": item})),
            SendToPage(transcript_event("user", None, message.text, True)),
        ]
        create = self._page_event({"type": ClientEvent.RESPONSE_CREATE})
        if self._responses.settling or self._responses.active is not None:
            self._held_create = (create, now + CANCEL_SETTLE_S)
            return [*actions, Wake(CANCEL_SETTLE_S)]
        return [*actions, *self._send_create(create)]

    def _page_event(self, event: Event) -> Event:
        self._page_events += 1
        return {**event, "event_id": f"{PAGE_EVENT_PREFIX}{self._page_events}"}

    def _send_create(self, create: Event) -> list[Action]:
        self._held_create = None
        self._page_create_sent = True
        return [SendToModel(create)]

    def _release_held(self) -> list[Action]:
        """The cancelled response ended: ask for the answer to the typed text now."""
        held = self._held_create
        if held is None or self._responses.settling or self._responses.active is not None:
            return []
        return self._send_create(held[0])

    def wake(self, now: float) -> list[Action]:
        """A `Wake` is due: a typed text still waiting past its deadline is answered anyway."""
        held = self._held_create
        if held is None or now < held[1]:
            return []
        logger.info("%s asked for an answer without the cancelled response's end", self._label)
        return self._send_create(held[0])

    def item_started(self, item_id: str | None, now: float) -> list[Action]:
        """The playout sent the first frame of an assistant item."""
        self._playing_item = item_id
        actions: list[Action] = [ShowState(State.ASSISTANT_SPEAKING)]
        if self._turn_end_t is not None:
            latency_ms = (now - self._turn_end_t) * 1000
            self._turn_end_t = None
            self.stats.latencies_ms.append(latency_ms)
            actions.append(SendToPage(latency_event(self.stats.turns, latency_ms)))
        return actions

    def drained(self) -> list[Action]:
        """The playout ran out of assistant audio."""
        return [] if self._user_speaking else [ShowState(State.LISTENING)]

    def interrupt(self, now: float) -> list[Action]:
        """Barge-in: stop playout now, cancel the response, truncate what was not heard."""
        playing = self._playout.is_playing
        item_id = self._playing_item
        item = None if item_id is None else self._playout.item(item_id)
        actions: list[Action] = [FlushPlayout()]
        cancelled, cancelled_item = self._responses.cancel()
        if cancelled is not None:
            actions.append(SendToModel({"type": ClientEvent.RESPONSE_CANCEL}))
        truncated = False
        if item_id is not None and item is not None:
            # A finished item stays the last one played while the next reply's audio is queued.
            unheard = playing and item.sent_ms < item.received_ms
            truncated = unheard or (cancelled is not None and item_id == cancelled_item)
            if truncated:
                played_ms = min(item.sent_ms, item.received_ms)
                truncate = {
                    "type": ClientEvent.ITEM_TRUNCATE,
                    "item_id": item_id,
                    # Thinking models put other parts first: the audio part's own index.
                    "content_index": self._responses.audio_index(item_id),
                    "audio_end_ms": played_ms,
                }
                actions.append(SendToModel(truncate))
                self._responses.mark_cancelled(item_id)
                actions.append(SendToPage(interrupted_event(item_id, played_ms)))
        if cancelled is not None or truncated:
            self.stats.interruptions += 1
            self._last_cancel_t = now
        return actions

    # -- server events ---------------------------------------------------------------------

    def _speech_started(self, event: Event, now: float) -> list[Action]:
        self._user_speaking = True
        return [StartUtterance(), *self.interrupt(now), ShowState(State.USER_SPEAKING)]

    def _speech_stopped(self, event: Event, now: float) -> list[Action]:
        item_id = _text(event, "item_id")
        self._user_speaking = False
        self.stats.turns += 1
        end_ms = event.get("audio_end_ms")
        ended = None
        if isinstance(end_ms, int | float) and not isinstance(end_ms, bool):
            ended = self._speech_end(end_ms)
        self._turn_end_t = ended if ended is not None else now
        return [AnalyzeUtterance(item_id), ShowState(State.LISTENING)]

    def _response_created(self, event: Event, now: float) -> list[Action]:
        self._responses.created(_text(_object(event, "response"), "id"))
        self._page_create_sent = False
        return []

    def _response_done(self, event: Event, now: float) -> list[Action]:
        self._responses.done(_text(_object(event, "response"), "id"))
        return self._release_held()

    def _response_cancelled(self, event: Event, now: float) -> list[Action]:
        # StepFun's reference answers response.cancel with response.cancelled.
        response_id = _text(event, "response_id") or _text(_object(event, "response"), "id")
        self._responses.done(response_id)
        return self._release_held()

    def _output_item(self, event: Event, now: float) -> list[Action]:
        item = _object(event, "item")
        item_id = _text(item, "id")
        self._responses.learn_item(_text(event, "response_id"), item_id)
        self._responses.learn_content(item_id, item.get("content"))
        return []

    def _content_part(self, event: Event, now: float) -> list[Action]:
        item_id = _text(event, "item_id")
        self._responses.learn_item(_text(event, "response_id"), item_id)
        part = _object(event, "part")
        self._responses.learn_part(item_id, event.get("content_index"), part.get("type"))
        return []

    def _is_cancelled(self, response_id: str | None, item_id: str | None) -> bool:
        return self._responses.is_late(response_id, item_id)

    def _audio_delta(self, event: Event, now: float) -> list[Action]:
        response_id, item_id = _text(event, "response_id"), _text(event, "item_id")
        delta = _text(event, "delta") or ""
        if self._is_cancelled(response_id, item_id):
            self.stats.late_deltas_dropped += 1
            return []
        try:
            pcm = base64.b64decode(delta, validate=True)
        except (binascii.Error, ValueError):
            raise MalformedEvent("delta") from None
        self._responses.playing(response_id, item_id)
        self._responses.learn_part(item_id, event.get("content_index"), "audio")
        pcm = pcm[: len(pcm) & ~1]
        return [PlayAudio(item_id, pcm)] if pcm else []

    def _assistant_text(self, event: Event, now: float) -> list[Action]:
        item_id, text = _text(event, "item_id"), _text(event, "delta") or ""
        if self._is_cancelled(_text(event, "response_id"), item_id):
            return []
        return [SendToPage(self._transcripts.update("assistant", item_id, text, final=False))]

    def _assistant_text_done(self, event: Event, now: float) -> list[Action]:
        item_id = _text(event, "item_id")
        text = _text(event, "transcript") or _text(event, "text")
        if self._is_cancelled(_text(event, "response_id"), item_id):
            return []
        return [SendToPage(self._transcripts.update("assistant", item_id, text, final=True))]

    def _thinking_text(self, event: Event, now: float) -> list[Action]:
        # Reasoning is never spoken nor put in the transcript: the page's debug view only.
        item_id = _text(event, "item_id")
        if self._is_cancelled(_text(event, "response_id"), item_id):
            return []
        final = event.get("type") == ServerEvent.THINKING_DONE
        text = _text(event, "thinking") if final else _text(event, "delta") or ""
        whole = self._thinking.update("assistant", item_id, text, final=final)["text"]
        return [SendToPage(thinking_event(item_id, whole, final))]

    def _user_text(self, event: Event, now: float) -> list[Action]:
        item_id, text = _text(event, "item_id"), _text(event, "delta") or ""
        page = self._transcripts.update(
            "user", item_id, text, final=False, replace=self._cumulative
        )
        return [SendToPage(page)]

    def _user_text_done(self, event: Event, now: float) -> list[Action]:
        item_id, text = _text(event, "item_id"), _text(event, "transcript")
        return [SendToPage(self._transcripts.update("user", item_id, text, final=True))]

    def _error(self, event: Event, now: float) -> list[Action]:
        message = self._redact(error_message(event))
        body = event.get("error")
        cause = body.get("event_id") if isinstance(body, dict) else None
        # The page's own request failed: it must hear it, however soon after a cancel.
        pages = (
            cause.startswith(PAGE_EVENT_PREFIX)
            if isinstance(cause, str)
            else self._page_create_sent
        )
        self._page_create_sent = self._page_create_sent and not pages
        if not pages and now - self._last_cancel_t < BENIGN_ERROR_WINDOW_S:
            logger.debug("%s ignored a backend error after cancel: %s", self._label, message)
            return []
        if not self._errors_shown.take(now):
            self.stats.errors_not_shown += 1
            return []
        logger.info("%s backend error: %s", self._label, message)
        return [SendToPage(error_event(ErrorCode.BACKEND_ERROR, message))]


_HANDLERS: dict[str, Callable[[Turns, Event, float], list[Action]]] = {
    ServerEvent.SPEECH_STARTED: Turns._speech_started,
    ServerEvent.SPEECH_STOPPED: Turns._speech_stopped,
    ServerEvent.RESPONSE_CREATED: Turns._response_created,
    ServerEvent.RESPONSE_DONE: Turns._response_done,
    ServerEvent.RESPONSE_CANCELLED: Turns._response_cancelled,
    ServerEvent.OUTPUT_ITEM_ADDED: Turns._output_item,
    ServerEvent.OUTPUT_ITEM_DONE: Turns._output_item,
    ServerEvent.CONTENT_PART_ADDED: Turns._content_part,
    ServerEvent.THINKING_DELTA: Turns._thinking_text,
    ServerEvent.THINKING_DONE: Turns._thinking_text,
    ServerEvent.AUDIO_DELTA: Turns._audio_delta,
    ServerEvent.AUDIO_TRANSCRIPT_DELTA: Turns._assistant_text,
    ServerEvent.TEXT_DELTA: Turns._assistant_text,
    ServerEvent.AUDIO_TRANSCRIPT_DONE: Turns._assistant_text_done,
    ServerEvent.TEXT_DONE: Turns._assistant_text_done,
    ServerEvent.INPUT_TRANSCRIPT_DELTA: Turns._user_text,
    ServerEvent.INPUT_TRANSCRIPT_DONE: Turns._user_text_done,
    ServerEvent.ERROR: Turns._error,
}
