"""The session's responses: response.create and response.cancel, at most one response at a time."""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

from pydantic import Field

from protocol.events import Event

from .client_events import ClientEventError, ClientShape, IdFactory, validated
from .config import SessionConfig, response_modalities
from .conversation import Conversation
from .models import LocalModel
from .outbox import Outbox
from .response import ActiveResponse

Modalities = Annotated[list[Literal["text", "audio"]], Field(min_length=1)]


class ResponseOptions(ClientShape):
    """What a response.create may override for one response (beta and GA names)."""

    modalities: Modalities | None = None
    output_modalities: Modalities | None = None
    instructions: str = ""


class _ResponseCreate(ClientShape):
    response: ResponseOptions | None = None


class Responder:
    """Starts model responses for the session and stops the one in flight."""

    def __init__(
        self,
        outbox: Outbox,
        ids: IdFactory,
        conversation: Conversation,
        model: LocalModel,
        config: SessionConfig,
    ) -> None:
        self._out = outbox
        self._ids = ids
        self._conversation = conversation
        self._model = model
        self.config = config  # the session's, kept current by session.update
        self._response: ActiveResponse | None = None
        self.turns = 0

    @property
    def active(self) -> ActiveResponse | None:
        """The response between response.created and response.done, if any."""
        response = self._response
        return response if response is not None and response.active else None

    async def create(self, event: Event) -> None:
        active = self.active
        if active is not None:
            raise ClientEventError(
                "conversation_already_has_active_response",
                f"Conversation already has an active response in progress: {active.id}. "
                "Wait until the response is finished before creating a new one.",
            )
        options = validated(_ResponseCreate, event).response or ResponseOptions()
        given = options.model_fields_set
        # The beta name wins when a client sends both.
        listed = options.modalities if "modalities" in given else options.output_modalities
        modalities = None if listed is None else response_modalities(listed)
        self.start(modalities, options.instructions if "instructions" in given else None)

    async def cancel(self, event: Event) -> None:
        active = self.active
        requested = event.get("response_id")
        if active is None or (requested is not None and requested != active.id):
            raise ClientEventError(
                "response_cancel_not_active", "Cancellation failed: no active response found."
            )
        await self.stop()
        await active.finish("cancelled", "client_cancelled")

    def start(
        self, modalities: tuple[str, ...] | None = None, instructions: str | None = None
    ) -> None:
        """Starts answering the conversation; the session's settings fill what is not given."""
        config = self.config
        response = ActiveResponse(
            response_id=self._ids.new("resp"),
            item_id=self._ids.new("item"),
            outbox=self._out,
            conversation=self._conversation,
            model=self._model,
            request=self._conversation.model_request(
                instructions=config.instructions if instructions is None else instructions,
                voice=config.voice,
                modalities=modalities or config.modalities,
                tools=config.tools,
            ),
        )
        response.task = asyncio.create_task(
            response.run(), name=f"localmodel-{config.id}-{response.id}"
        )
        self._response = response
        self.turns += 1

    async def stop(self) -> ActiveResponse | None:
        """Stops the response task at once; returns the response if it was still active."""
        response = self._response
        if response is None or response.task is None:
            return None
        active = response.active
        if not response.task.done():
            response.task.cancel()
            # wait() never raises the task's CancelledError into us, nor swallows our own.
            await asyncio.wait([response.task])
        return response if active else None
