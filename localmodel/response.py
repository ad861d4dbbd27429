"""One model response: streams a model's parts as protocol events, and closes it on cancel."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import AsyncIterator

from protocol.events import Event, ServerEvent

from .conversation import ContentPart, Conversation, ConversationItem
from .models import (
    AudioChunk,
    FunctionCall,
    InputTranscript,
    LocalModel,
    ModelRequest,
    ResponsePart,
    TranscriptDelta,
)
from .outbox import ChannelClosed, Outbox

logger = logging.getLogger(__name__)


class ActiveResponse:
    """A response from response.created to response.done.

    `run()` is the body of the response task. Whoever stops that task (client cancel, barge-in,
    disconnect) awaits it and then calls `finish()`, which sends whatever closing events the
    task had not sent yet, so the client always sees a complete, well-ordered response.
    """

    def __init__(
        self,
        *,
        response_id: str,
        item_id: str,
        outbox: Outbox,
        conversation: Conversation,
        model: LocalModel,
        request: ModelRequest,
    ) -> None:
        self.id = response_id
        audio = "audio" in request.modalities
        part = ContentPart(type="audio", transcript="") if audio else ContentPart("text", text="")
        self.item = ConversationItem(
            id=item_id, role="assistant", status="in_progress", content=[part]
        )
        self.finished = False
        self.task: asyncio.Task[None] | None = None
        self._out = outbox
        self._conversation = conversation
        self._model = model
        self._request = request
        self._audio = audio
        self._sent: set[ServerEvent] = set()
        self._transcript: list[str] = []
        self._calls: list[ConversationItem] = []  # function_call items, after the message

    @property
    def part(self) -> ContentPart:
        return self.item.content[0]

    @property
    def active(self) -> bool:
        return not self.finished and self.task is not None and not self.task.done()

    async def run(self) -> None:
        try:
            await self._open()
            stream = self._model.respond(self._request)
            try:
                async for part in stream:
                    await self._send_part(part)
            finally:
                await _close_stream(stream)
            await self.finish("completed")
        except ChannelClosed:
            logger.debug("Response(%s): channel closed", self.id)
        except Exception:
            logger.exception("Response(%s): model failed", self.id)
            try:
                await self.finish("failed", error="The local model failed while responding.")
            except ChannelClosed:
                logger.debug("Response(%s): channel closed", self.id)

    async def finish(
        self, status: str, reason: str | None = None, *, error: str | None = None
    ) -> None:
        """Sends the remaining closing events; `status` is completed, cancelled or failed."""
        if ServerEvent.RESPONSE_CREATED not in self._sent:
            await self._open_response()
        self.item.status = "completed" if status == "completed" else "incomplete"
        ids = self._ids()
        text = "".join(self._transcript)
        if ServerEvent.CONTENT_PART_ADDED in self._sent:
            if self._audio:
                await self._once(ServerEvent.AUDIO_DONE, ids)
                await self._once(ServerEvent.AUDIO_TRANSCRIPT_DONE, {**ids, "transcript": text})
            else:
                await self._once(ServerEvent.TEXT_DONE, {**ids, "text": text})
            await self._once(ServerEvent.CONTENT_PART_DONE, {**ids, "part": self._part_json()})
        if ServerEvent.OUTPUT_ITEM_ADDED in self._sent:
            item = {"response_id": self.id, "output_index": 0, "item": self._item_json()}
            await self._once(ServerEvent.OUTPUT_ITEM_DONE, item)
            await self._once(ServerEvent.ITEM_DONE, {"item": self._item_json()})
        details: Event | None = None
        if status == "cancelled":
            details = {"type": "cancelled", "reason": reason}
        elif status == "failed":
            details = {"type": "failed", "error": {"type": "server_error", "message": error}}
        self.finished = True
        output = [self._item_json()] if ServerEvent.OUTPUT_ITEM_ADDED in self._sent else []
        output += [call.to_json(self._out.naming) for call in self._calls]
        await self._once(
            ServerEvent.RESPONSE_DONE, {"response": self._response_json(status, details, output)}
        )

    async def _open(self) -> None:
        await self._open_response()
        previous = self._conversation.add(self.item)
        item = self._item_json()
        await self._once(
            ServerEvent.OUTPUT_ITEM_ADDED, {"response_id": self.id, "output_index": 0, "item": item}
        )
        await self._once(ServerEvent.ITEM_CREATED, {"previous_item_id": previous, "item": item})
        await self._once(ServerEvent.CONTENT_PART_ADDED, {**self._ids(), "part": self._part_json()})

    async def _open_response(self) -> None:
        await self._once(
            ServerEvent.RESPONSE_CREATED, {"response": self._response_json("in_progress")}
        )

    async def _send_part(self, part: ResponsePart) -> None:
        if isinstance(part, AudioChunk):
            if not self._audio or not part.pcm:
                return
            self.part.audio_bytes += len(part.pcm)
            delta = base64.b64encode(part.pcm).decode("ascii")
            await self._out.emit(
                ServerEvent.AUDIO_DELTA, {**self._ids(), "delta": delta}, shield=True
            )
        elif isinstance(part, TranscriptDelta):
            self._transcript.append(part.text)
            if self._audio:
                self.part.transcript = (self.part.transcript or "") + part.text
                name = ServerEvent.AUDIO_TRANSCRIPT_DELTA
            else:
                self.part.text = (self.part.text or "") + part.text
                name = ServerEvent.TEXT_DELTA
            await self._out.emit(name, {**self._ids(), "delta": part.text}, shield=True)
        elif isinstance(part, FunctionCall):
            await self._send_function_call(part)
        else:
            await self._send_input_transcript(part)

    async def _send_function_call(self, part: FunctionCall) -> None:
        """A function_call item after the message, as OpenAI streams one (arguments at once)."""
        index = len(self._calls) + 1
        call = ConversationItem(
            id=f"{self.item.id}_fc{index}",
            type="function_call",
            status="in_progress",
            call_id=f"call_{self.item.id}_{index}",
            name=part.name,
            arguments="",
        )
        self._calls.append(call)
        previous = self._conversation.add(call)
        where = {"response_id": self.id, "output_index": index}
        naming = self._out.naming
        await self._out.emit(
            ServerEvent.OUTPUT_ITEM_ADDED, {**where, "item": call.to_json(naming)}, shield=True
        )
        created = {"previous_item_id": previous, "item": call.to_json(naming)}
        await self._out.emit(ServerEvent.ITEM_CREATED, created, shield=True)
        ids = {**where, "item_id": call.id, "call_id": call.call_id}
        delta = {**ids, "delta": part.arguments}
        await self._out.emit(ServerEvent.FUNCTION_CALL_ARGUMENTS_DELTA, delta, shield=True)
        call.arguments, call.status = part.arguments, "completed"
        done = {**ids, "name": part.name, "arguments": part.arguments}
        await self._out.emit(ServerEvent.FUNCTION_CALL_ARGUMENTS_DONE, done, shield=True)
        await self._out.emit(
            ServerEvent.OUTPUT_ITEM_DONE, {**where, "item": call.to_json(naming)}, shield=True
        )

    async def _send_input_transcript(self, part: InputTranscript) -> None:
        turn = self._request.turn
        if turn is None or not self._conversation.contains(turn.item_id):
            return
        item = self._conversation.get(turn.item_id)
        for index, content in enumerate(item.content):
            if content.type == "input_audio":
                content.transcript = part.text
                fields = {"item_id": item.id, "content_index": index, "transcript": part.text}
                await self._out.emit(ServerEvent.INPUT_TRANSCRIPT_DONE, fields, shield=True)
                return

    async def _once(self, event: ServerEvent, fields: Event) -> None:
        # Marked before sending: a shielded send completes even if this task is cancelled.
        if event in self._sent:
            return
        self._sent.add(event)
        await self._out.emit(event, fields, shield=True)

    def _ids(self) -> Event:
        return {
            "response_id": self.id,
            "item_id": self.item.id,
            "output_index": 0,
            "content_index": 0,
        }

    def _part_json(self) -> Event:
        return self.part.to_json(self._out.naming)

    def _item_json(self) -> Event:
        return self.item.to_json(self._out.naming)

    def _response_json(
        self,
        status: str,
        details: Event | None = None,
        output: list[Event] | None = None,
    ) -> Event:
        modalities = list(self._request.modalities)
        return {
            "id": self.id,
            "object": "realtime.response",
            "status": status,
            "status_details": details,
            "output": output or [],
            "modalities": modalities,
            "output_modalities": ["audio"] if self._audio else ["text"],
            "usage": None,
        }


async def _close_stream(stream: AsyncIterator[ResponsePart]) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()
