"""Which response and item each server event belongs to, for barge-in, as pure state.

StepFun's audio deltas may carry no `response_id` (its reference shows them with `item_id`
only), and a thinking model's message has a thinking part before its audio part. So the ledger
learns, from `response.output_item.added`, `response.content_part.added` and the deltas, which
response an item belongs to and at which content index its audio is; a part that names
neither, while a cancelled response has not ended and no new one started, is late audio of it.
"""

from __future__ import annotations

from collections import deque
from typing import Any

MAX_TRACKED = 16  # responses and items remembered; older ones are long over
AUDIO_PART_TYPES = ("audio", "output_audio")  # beta/StepFun, OpenAI GA


def _remember(mapping: dict[str, Any], key: str, value: Any) -> None:
    mapping[key] = value
    while len(mapping) > MAX_TRACKED:
        del mapping[next(iter(mapping))]


class ResponseLedger:
    def __init__(self) -> None:
        self.active: str | None = None  # the response in progress ("unknown" without an id)
        self.active_item: str | None = None  # its item whose audio is playing
        self._cancelled: deque[str] = deque(maxlen=MAX_TRACKED)  # response and item ids
        self._item_response: dict[str, str] = {}
        self._audio_index: dict[str, int] = {}
        self._unfinished: dict[str, None] = {}  # cancelled, and no response.done yet

    @property
    def settling(self) -> bool:
        """A cancelled response has not ended yet: the server still has one in progress."""
        return bool(self._unfinished)

    def created(self, response_id: str | None) -> None:
        self.active = response_id or "unknown"
        self.active_item = None
        self._unfinished.clear()  # one response at a time: the cancelled ones are over

    def done(self, response_id: str | None) -> None:
        if response_id in (self.active, None):
            self.active = None
        if response_id is None:
            self._unfinished.clear()
        else:
            self._unfinished.pop(response_id, None)

    def learn_item(self, response_id: str | None, item_id: str | None) -> None:
        if response_id is not None and item_id is not None:
            _remember(self._item_response, item_id, response_id)

    def learn_part(self, item_id: str | None, index: object, part_type: object) -> None:
        """A content part of an item: remember where its audio is."""
        if item_id is None or part_type not in AUDIO_PART_TYPES:
            return
        if isinstance(index, int) and not isinstance(index, bool) and index >= 0:
            _remember(self._audio_index, item_id, index)

    def learn_content(self, item_id: str | None, content: object) -> None:
        """An item's `content` list as the server reported it."""
        if isinstance(content, list):
            for index, part in enumerate(content):
                if isinstance(part, dict) and part.get("type") in AUDIO_PART_TYPES:
                    self.learn_part(item_id, index, part["type"])
                    return

    def audio_index(self, item_id: str | None) -> int:
        return self._audio_index.get(item_id or "", 0)

    def owner(self, response_id: str | None, item_id: str | None) -> str | None:
        if response_id is not None or item_id is None:
            return response_id
        return self._item_response.get(item_id)

    def is_late(self, response_id: str | None, item_id: str | None) -> bool:
        """Output of a cancelled response or truncated item, which must not play."""
        owner = self.owner(response_id, item_id)
        if owner in self._cancelled or item_id in self._cancelled:
            return True
        return owner is None and self.active is None and self.settling

    def playing(self, response_id: str | None, item_id: str | None) -> None:
        """An audio delta of (response, item) is being played."""
        owner = self.owner(response_id, item_id)
        if owner is None and self.active is not None:
            owner = self.active
            self.learn_item(owner, item_id)
        if owner is not None and owner == self.active:
            self.active_item = item_id

    def cancel(self) -> tuple[str | None, str | None]:
        """Cancel the active response: (its id, its playing item), or (None, None)."""
        cancelled, item_id = self.active, self.active_item
        if cancelled is None:
            return None, None
        self._cancelled.append(cancelled)
        _remember(self._unfinished, cancelled, None)
        for item, response in self._item_response.items():
            if response == cancelled:
                self._cancelled.append(item)
        if item_id is not None:
            self._cancelled.append(item_id)
        self.active = self.active_item = None
        return cancelled, item_id

    def mark_cancelled(self, item_id: str) -> None:
        self._cancelled.append(item_id)
