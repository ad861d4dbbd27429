"""What the Turns tests share: a stand-in playout view, event builders, action filters."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

from protocol.audio import BYTES_PER_MS
from protocol.events import ClientEvent, Event, ServerEvent
from relay.actions import (
    Action,
    SendToModel,
    SendToPage,
)
from relay.playout import ItemPlayout
from relay.turns import Turns


@dataclass
class Playout:
    """What a PlayoutTrack would know: the items it received and sent, and whether it plays."""

    items: dict[str | None, ItemPlayout] = field(default_factory=dict)
    is_playing: bool = False

    def item(self, item_id: str | None) -> ItemPlayout | None:
        return self.items.get(item_id)

    def play(self, item_id: str, received_ms: int, sent_ms: int) -> None:
        self.items[item_id] = ItemPlayout(
            item_id, received_ms * BYTES_PER_MS, sent_ms * BYTES_PER_MS
        )
        self.is_playing = sent_ms < received_ms


def model_events(actions: list[Action]) -> list[Event]:
    return [a.event for a in actions if isinstance(a, SendToModel)]


def page_events(actions: list[Action], kind: str | None = None) -> list[Event]:
    return [
        a.event
        for a in actions
        if isinstance(a, SendToPage) and (kind is None or a.event["type"] == kind)
    ]


def audio_delta(response_id: str, item_id: str, ms: int = 100) -> Event:
    pcm = bytes(ms * BYTES_PER_MS)
    return {
        "type": ServerEvent.AUDIO_DELTA,
        "response_id": response_id,
        "item_id": item_id,
        "delta": base64.b64encode(pcm).decode(),
    }


def created(response_id: str) -> Event:
    return {"type": ServerEvent.RESPONSE_CREATED, "response": {"id": response_id}}


SPEECH_STARTED: Event = {"type": ServerEvent.SPEECH_STARTED, "audio_start_ms": 1000}
CANCEL: Event = {"type": ClientEvent.RESPONSE_CANCEL}


def turns(playout: Playout, *, cumulative: bool = False) -> Turns:
    return Turns(playout, cumulative_user_transcripts=cumulative)
