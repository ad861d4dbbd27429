"""The `loopback` model's hot path: every append comes straight back as one audio delta."""

from __future__ import annotations

from protocol.events import Event, Naming, ServerEvent, spelled

from .client_events import ClientEventError, IdFactory, decode_audio
from .conversation import ContentPart, Conversation, ConversationItem
from .outbox import Outbox


class LoopbackMirror:
    """A long-lived response whose audio deltas are the client's appends, unchanged.

    Benchmarks use it to measure what the relay adds, so an append costs one JSON parse, one
    base64 validity check and one string join: the base64 text is passed through as received.
    A `response.cancel` ends the response; the next append starts a new one, as a model would
    answer what the person says after interrupting it.
    """

    def __init__(self, outbox: Outbox, conversation: Conversation, ids: IdFactory) -> None:
        self._out = outbox
        self._conversation = conversation
        self._ids = ids
        self._live = False
        self._naming: Naming | None = None
        self._head = ""
        self._new_response()

    def _new_response(self) -> None:
        self.response_id = self._ids.new("resp")
        self.item = ConversationItem(
            id=self._ids.new("item"),
            role="assistant",
            status="in_progress",
            content=[ContentPart(type="audio", transcript="")],
        )
        self._middle = (
            f'","response_id":"{self.response_id}","item_id":"{self.item.id}",'
            '"output_index":0,"content_index":0,"delta":"'
        )

    def _response_json(self, status: str, details: Event | None, output: list[Event]) -> Event:
        return {
            "id": self.response_id,
            "object": "realtime.response",
            "status": status,
            "status_details": details,
            "output": output,
            "usage": None,
        }

    async def start(self) -> None:
        self._live = True
        ids: Event = {"response_id": self.response_id, "output_index": 0}
        response = self._response_json("in_progress", None, [])
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

    async def cancel(self, event: Event) -> None:
        """`response.cancel`: closes the live response as cancelled."""
        requested = event.get("response_id")
        if not self._live or requested not in (None, self.response_id):
            raise ClientEventError(
                "response_cancel_not_active", "Cancellation failed: no active response found."
            )
        self._live = False
        self.item.status = "incomplete"
        naming = self._out.naming
        ids: Event = {"response_id": self.response_id, "output_index": 0}
        part: Event = {**ids, "item_id": self.item.id, "content_index": 0}
        await self._out.emit(ServerEvent.AUDIO_DONE, part)
        await self._out.emit(ServerEvent.AUDIO_TRANSCRIPT_DONE, {**part, "transcript": ""})
        content = self.item.content[0].to_json(naming)
        await self._out.emit(ServerEvent.CONTENT_PART_DONE, {**part, "part": content})
        item = self.item.to_json(naming)
        await self._out.emit(ServerEvent.OUTPUT_ITEM_DONE, {**ids, "item": item})
        await self._out.emit(ServerEvent.ITEM_DONE, {"item": item})
        details = {"type": "cancelled", "reason": "client_cancelled"}
        response = self._response_json("cancelled", details, [item])
        await self._out.emit(ServerEvent.RESPONSE_DONE, {"response": response})
        self._new_response()

    async def mirror(self, audio: object) -> None:
        size = len(decode_audio(audio))
        if size == 0 or not isinstance(audio, str):
            return
        if not self._live:
            await self.start()
        self.item.content[0].audio_bytes += size
        if self._naming is not self._out.naming:
            self._naming = self._out.naming
            name = spelled(self._naming, ServerEvent.AUDIO_DELTA)
            self._head = f'{{"type":"{name}","event_id":"'
        # Base64 needs no JSON escaping, and our ids are plain ASCII.
        await self._out.send_text(f'{self._head}{self._out.new_event_id()}{self._middle}{audio}"}}')
