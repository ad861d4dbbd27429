"""The server-side conversation: items, their content parts and bounded retained audio."""

from __future__ import annotations

import dataclasses

from protocol.audio import BYTES_PER_MS
from protocol.events import Event, Naming, spelled

from .client_events import ClientEventError, decode_audio
from .models import HistoryEntry, ModelRequest, UserTurn

MAX_ITEMS = 500
# User audio kept for models that look back; older items keep their metadata only.
MAX_RETAINED_AUDIO_MS = 10 * 60 * 1000


@dataclasses.dataclass
class ContentPart:
    """One content part; `type` uses the beta names (input_text, input_audio, text, audio)."""

    type: str
    text: str | None = None
    transcript: str | None = None
    audio: bytes = b""  # user input audio (pcm16), dropped when the retention cap is hit
    audio_bytes: int = 0  # how much audio this part carried or generated, even once dropped

    @property
    def audio_ms(self) -> int:
        return self.audio_bytes // BYTES_PER_MS

    def to_json(self, naming: Naming) -> Event:
        kind = spelled(naming, self.type) or self.type
        if self.type in ("input_text", "text"):
            return {"type": kind, "text": self.text or ""}
        return {"type": kind, "transcript": self.transcript}


@dataclasses.dataclass
class ConversationItem:
    """A message (or function output) in the conversation."""

    id: str
    type: str = "message"
    role: str | None = None
    status: str = "completed"
    content: list[ContentPart] = dataclasses.field(default_factory=list)
    call_id: str | None = None
    output: str | None = None
    name: str | None = None  # a function_call's function and its JSON arguments
    arguments: str | None = None

    @property
    def text(self) -> str:
        """What the item said, as far as text is known (typed text or transcripts)."""
        pieces = (part.text if part.text is not None else part.transcript for part in self.content)
        return " ".join(piece for piece in pieces if piece)

    @property
    def audio(self) -> bytes:
        return b"".join(part.audio for part in self.content)

    def to_json(self, naming: Naming) -> Event:
        item: Event = {"id": self.id, "object": "realtime.item", "type": self.type}
        if self.type == "function_call_output":
            item.update(call_id=self.call_id, output=self.output)
            return item
        if self.type == "function_call":
            item.update(
                status=self.status, call_id=self.call_id, name=self.name, arguments=self.arguments
            )
            return item
        item.update(
            status=self.status,
            role=self.role,
            content=[part.to_json(naming) for part in self.content],
        )
        return item


class Conversation:
    """Ordered items with bounded memory: at most MAX_ITEMS items and MAX_RETAINED_AUDIO_MS."""

    def __init__(self) -> None:
        self._items: list[ConversationItem] = []

    @property
    def has_assistant_audio(self) -> bool:
        """Whether the model has spoken yet (a session's voice is fixed from then on)."""
        return any(
            item.role == "assistant" and any(part.audio_bytes for part in item.content)
            for item in self._items
        )

    def get(self, item_id: object) -> ConversationItem:
        for item in self._items:
            if item.id == item_id:
                return item
        raise ClientEventError(
            "item_not_found", f"No conversation item with id {item_id!r}.", param="item_id"
        )

    def contains(self, item_id: str) -> bool:
        return any(item.id == item_id for item in self._items)

    def add(self, item: ConversationItem, previous_item_id: str | None = None) -> str | None:
        """Inserts after `previous_item_id` (default: at the end); returns the id before it."""
        if previous_item_id is None:
            index = len(self._items)
        else:
            index = self._items.index(self.get(previous_item_id)) + 1
        before = self._items[index - 1].id if index > 0 else None
        self._items.insert(index, item)
        self._enforce_limits()
        return before

    def delete(self, item_id: object) -> None:
        self._items.remove(self.get(item_id))

    def truncate(
        self, item_id: object, content_index: object, audio_end_ms: object
    ) -> tuple[str, int, int]:
        """Cuts an assistant audio part to what the user heard; returns the effective values."""
        item = self.get(item_id)
        if (
            isinstance(content_index, bool)
            or not isinstance(content_index, int)
            or not 0 <= content_index < len(item.content)
        ):
            raise ClientEventError(
                "invalid_value",
                "content_index does not name a content part.",
                param="content_index",
            )
        part = item.content[content_index]
        if item.role != "assistant" or part.type != "audio":
            raise ClientEventError(
                "invalid_value",
                "Only model output audio messages can be truncated.",
                param="item_id",
            )
        if isinstance(audio_end_ms, bool) or not isinstance(audio_end_ms, int) or audio_end_ms < 0:
            raise ClientEventError(
                "invalid_value",
                "audio_end_ms must be a non-negative integer.",
                param="audio_end_ms",
            )
        if audio_end_ms > part.audio_ms:
            raise ClientEventError(
                "invalid_value",
                f"Audio content of {part.audio_ms}ms is already shorter than {audio_end_ms}ms.",
                param="audio_end_ms",
            )
        part.audio_bytes = audio_end_ms * BYTES_PER_MS
        # As OpenAI does: drop the transcript, so the context holds nothing the user did not hear.
        part.transcript = ""
        return item.id, content_index, audio_end_ms

    def model_request(
        self,
        *,
        instructions: str,
        voice: str,
        modalities: tuple[str, ...],
        tools: tuple[Event, ...] = (),
    ) -> ModelRequest:
        """What a model answers: the latest user item, and the items before it as history."""
        items = self._items
        index = next((i for i in range(len(items) - 1, -1, -1) if items[i].role == "user"), None)
        turn = None
        earlier = items
        if index is not None:
            user = items[index]
            turn = UserTurn(item_id=user.id, audio=user.audio, text=user.text)
            earlier = items[:index]
        history = tuple(
            HistoryEntry(role=item.role, text=item.text)
            for item in earlier
            if item.role is not None and item.text
        )
        last = items[-1] if items else None
        return ModelRequest(
            turn=turn,
            history=history,
            instructions=instructions,
            voice=voice,
            modalities=modalities,
            tools=tools,
            tool_output=last.output if last and last.type == "function_call_output" else None,
        )

    def _enforce_limits(self) -> None:
        del self._items[: max(0, len(self._items) - MAX_ITEMS)]
        budget = MAX_RETAINED_AUDIO_MS * BYTES_PER_MS
        for item in reversed(self._items):
            for part in item.content:
                if len(part.audio) > budget:
                    part.audio = b""
                budget -= len(part.audio)


def parse_client_item(raw: object, item_id: str) -> ConversationItem:
    """Builds an item from conversation.item.create's `item` (assistant audio is not accepted)."""
    if not isinstance(raw, dict):
        raise ClientEventError(
            "missing_required_parameter", "The event needs an 'item' object.", param="item"
        )
    kind = raw.get("type", "message")
    if kind == "function_call_output":
        call_id, output = raw.get("call_id"), raw.get("output")
        if not isinstance(call_id, str) or not isinstance(output, str):
            raise ClientEventError(
                "invalid_value",
                "A function_call_output item needs string 'call_id' and 'output'.",
                param="item.call_id",
            )
        return ConversationItem(id=item_id, type=kind, call_id=call_id, output=output)
    if kind != "message":
        raise ClientEventError(
            "invalid_value", f"Unsupported item type {kind!r}.", param="item.type"
        )
    role = raw.get("role")
    if role not in ("user", "assistant", "system"):
        raise ClientEventError(
            "invalid_value", "item.role must be 'user', 'assistant' or 'system'.", param="item.role"
        )
    content = raw.get("content")
    if not isinstance(content, list) or not content:
        raise ClientEventError(
            "invalid_value", "item.content must be a non-empty list.", param="item.content"
        )
    parts = [_parse_part(part, role, f"item.content[{i}]") for i, part in enumerate(content)]
    return ConversationItem(id=item_id, role=role, content=parts)


def _parse_part(raw: object, role: str, param: str) -> ContentPart:
    if not isinstance(raw, dict):
        raise ClientEventError("invalid_value", f"{param} must be an object.", param=param)
    kind = raw.get("type")
    if kind in ("input_text", "text", "output_text"):
        text = raw.get("text")
        if not isinstance(text, str):
            raise ClientEventError(
                "invalid_value", f"{param}.text must be a string.", param=f"{param}.text"
            )
        return ContentPart(type="text" if role == "assistant" else "input_text", text=text)
    if kind == "input_audio" and role == "user":
        audio = raw.get("audio")
        pcm = b"" if audio is None else decode_audio(audio, f"{param}.audio")
        transcript = raw.get("transcript")
        return ContentPart(
            type="input_audio",
            transcript=transcript if isinstance(transcript, str) else None,
            audio=pcm,
            audio_bytes=len(pcm),
        )
    raise ClientEventError(
        "invalid_value",
        f"Content type {kind!r} is not accepted in a {role} message.",
        param=f"{param}.type",
    )
