"""The `loopback` model's hot path: every append comes straight back as one audio delta."""

from __future__ import annotations

from protocol.events import Event, Naming, ServerEvent, spelled

from .client_events import IdFactory, decode_audio
from .conversation import ContentPart, Conversation, ConversationItem
from .outbox import Outbox


class LoopbackMirror:
    """One long-lived response whose audio deltas are the client's appends, unchanged.

    Benchmarks use it to measure what the relay adds, so an append costs one JSON parse, one
    base64 validity check and one string join: the base64 text is passed through as received.
    """

    def __init__(self, outbox: Outbox, conversation: Conversation, ids: IdFactory) -> None:
        self._out = outbox
        self._conversation = conversation
        self.response_id = ids.new("resp")
        self.item = ConversationItem(
            id=ids.new("item"),
            role="assistant",
            status="in_progress",
            content=[ContentPart(type="audio", transcript="")],
        )
        self._naming: Naming | None = None
        self._head = ""
        self._middle = (
            f'","response_id":"{self.response_id}","item_id":"{self.item.id}",'
            '"output_index":0,"content_index":0,"delta":"'
        )

    async def start(self) -> None:
        ids: Event = {"response_id": self.response_id, "output_index": 0}
        response: Event = {
            "id": self.response_id,
            "object": "realtime.response",
            "status": "in_progress",
            "status_details": None,
            "output": [],
            "usage": None,
        }
        await self._out.emit(ServerEvent.RESPONSE_CREATED, {"response": response})
        previous = self._conversation.add(self.item)
        item = self.item.to_json(self._out.naming)
        await self._out.emit(ServerEvent.OUTPUT_ITEM_ADDED, {**ids, "item": item})
        await self._out.emit(ServerEvent.ITEM_CREATED, {"previous_item_id": previous, "item": item})
        part = self.item.content[0].to_json(self._out.naming)
        await self._out.emit(
            ServerEvent.CONTENT_PART_ADDED,
            {**ids, "item_id": self.item.id, "content_index": 0, "part": part},
        )

    async def mirror(self, audio: object) -> None:
        size = len(decode_audio(audio))
        if size == 0 or not isinstance(audio, str):
            return
        self.item.content[0].audio_bytes += size
        if self._naming is not self._out.naming:
            self._naming = self._out.naming
            name = spelled(self._naming, ServerEvent.AUDIO_DELTA)
            self._head = f'{{"type":"{name}","event_id":"'
        # Base64 needs no JSON escaping, and our ids are plain ASCII.
        await self._out.send_text(f'{self._head}{self._out.new_event_id()}{self._middle}{audio}"}}')
