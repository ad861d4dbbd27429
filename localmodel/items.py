"""conversation.item.* client events, and the created/done events of every new item."""

from __future__ import annotations

from protocol.events import Event, ServerEvent

from .client_events import ClientEventError, IdFactory
from .conversation import Conversation, ConversationItem, parse_client_item
from .outbox import Outbox


class ItemEvents:
    """Creates, retrieves, truncates and deletes conversation items on the client's behalf."""

    def __init__(self, outbox: Outbox, ids: IdFactory, conversation: Conversation) -> None:
        self._out = outbox
        self._ids = ids
        self.conversation = conversation

    async def emit(self, item: ConversationItem, previous: str | None) -> None:
        """Announces an item just added after `previous` (GA also gets item.done)."""
        fields = {"previous_item_id": previous, "item": item.to_json(self._out.naming)}
        await self._out.emit(ServerEvent.ITEM_CREATED, fields)
        await self._out.emit(ServerEvent.ITEM_DONE, fields)

    async def create(self, event: Event) -> None:
        raw = event.get("item")
        requested = raw.get("id") if isinstance(raw, dict) else None
        if isinstance(requested, str) and requested:
            if self.conversation.contains(requested):
                raise ClientEventError(
                    "invalid_value", f"Item {requested!r} already exists.", param="item.id"
                )
            item_id = requested
        else:
            item_id = self._ids.new("item")
        previous_id = event.get("previous_item_id")
        if previous_id is not None and not isinstance(previous_id, str):
            raise ClientEventError(
                "invalid_value", "previous_item_id must be a string.", param="previous_item_id"
            )
        item = parse_client_item(raw, item_id)
        if previous_id is not None and not self.conversation.contains(previous_id):
            raise ClientEventError(
                "item_not_found",
                f"No conversation item with id {previous_id!r}.",
                param="previous_item_id",
            )
        previous = self.conversation.add(item, previous_id)
        await self.emit(item, previous)

    async def retrieve(self, event: Event) -> None:
        item = self.conversation.get(event.get("item_id"))
        await self._out.emit(ServerEvent.ITEM_RETRIEVED, {"item": item.to_json(self._out.naming)})

    async def truncate(self, event: Event) -> None:
        item_id, index, end_ms = self.conversation.truncate(
            event.get("item_id"), event.get("content_index", 0), event.get("audio_end_ms")
        )
        await self._out.emit(
            ServerEvent.ITEM_TRUNCATED,
            {"item_id": item_id, "content_index": index, "audio_end_ms": end_ms},
        )

    async def delete(self, event: Event) -> None:
        item_id = event.get("item_id")
        self.conversation.delete(item_id)
        await self._out.emit(ServerEvent.ITEM_DELETED, {"item_id": item_id})
