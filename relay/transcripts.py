"""Transcripts: the whole text of each turn so far, as the page shows it."""

from __future__ import annotations

from .events import PageEvent, Role, transcript_event

MAX_TRACKED_TURNS = 16


class Transcripts:
    """The whole text of each turn so far, from deltas or cumulative updates (bounded)."""

    def __init__(self) -> None:
        self._texts: dict[str, str] = {}

    def update(
        self,
        role: Role,
        item_id: str | None,
        text: str | None,
        *,
        final: bool,
        replace: bool = False,
    ) -> PageEvent:
        key = f"{role}:{item_id}"
        if final or replace:
            whole = text if text is not None else self._texts.get(key, "")
        else:
            whole = self._texts.get(key, "") + (text or "")
        if final:
            self._texts.pop(key, None)
        else:
            self._texts[key] = whole
            while len(self._texts) > MAX_TRACKED_TURNS:
                del self._texts[next(iter(self._texts))]
        return transcript_event(role, item_id, whole, final)
