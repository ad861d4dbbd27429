"""What the turn logic (relay.turns) returns for the session to carry out, and what it reads of
the playout."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from protocol.events import Event

from .events import PageEvent, State

# -- actions ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SendToModel:
    event: Event


@dataclass(frozen=True)
class SendToPage:
    event: PageEvent


@dataclass(frozen=True)
class ShowState:
    state: State


@dataclass(frozen=True)
class FlushPlayout:
    """Drop the queued assistant audio: the next frame is silence."""


@dataclass(frozen=True)
class PlayAudio:
    item_id: str | None
    pcm: bytes  # pcm16 24 kHz mono, whole samples


@dataclass(frozen=True)
class StartUtterance:
    """The user started a turn: keep its audio (tone of voice)."""


@dataclass(frozen=True)
class AnalyzeUtterance:
    """The user's turn ended: analyse the audio kept since `StartUtterance`."""

    item_id: str | None


@dataclass(frozen=True)
class Wake:
    """Call `Turns.wake` in `delay_s` (what waits on a deadline is released then)."""

    delay_s: float


Action = (
    SendToModel
    | SendToPage
    | ShowState
    | FlushPlayout
    | PlayAudio
    | StartUtterance
    | AnalyzeUtterance
    | Wake
)


# -- what the turn logic reads of the playout ----------------------------------------------


class PlayedItem(Protocol):
    """One assistant item as the playout saw it (relay.playout.ItemPlayout)."""

    @property
    def sent_ms(self) -> int: ...
    @property
    def received_ms(self) -> int: ...


class PlayoutView(Protocol):
    """What barge-in needs from the playout (relay.playout.PlayoutTrack)."""

    @property
    def is_playing(self) -> bool: ...
    def item(self, item_id: str | None) -> PlayedItem | None: ...
