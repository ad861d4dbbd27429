"""The embedded local backend, served as a realtime-protocol WebSocket at /v1/realtime."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter, WebSocket
from starlette.datastructures import State

from localmodel.models import DEFAULT_MODEL, LOCAL_MODELS
from localmodel.server import serve_realtime

from ..errors import error_response
from ..realtime_guard import APPEND_LIMIT, RealtimeGuard, RealtimeRefused
from ..workers import relay_sessions

router = APIRouter(tags=["realtime"])

POLICY_VIOLATION = 1008
DENIAL_EXTENSION = "websocket.http.response"


class WebSocketChannel:
    """Adapts Starlette's WebSocket to the local model's MessageChannel."""

    def __init__(self, websocket: WebSocket) -> None:
        self._websocket = websocket

    async def send(self, message: str) -> None:
        await self._websocket.send_text(message)

    async def __aiter__(self) -> AsyncIterator[str | bytes]:
        # Text and binary frames alike: the session answers a binary one with an `error`.
        while True:
            message = await self._websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            yield text if text is not None else message.get("bytes") or b""


def guard_of(state: State) -> RealtimeGuard:
    """The app's guard, made on first use (the relay's registry exists by then, if any)."""
    guard = getattr(state, "realtime_guard", None)
    if guard is None:
        guard = RealtimeGuard(state.settings, lambda: relay_sessions(state))
        state.realtime_guard = guard
    assert isinstance(guard, RealtimeGuard)
    return guard


async def refuse(websocket: WebSocket, refusal: RealtimeRefused) -> None:
    """Refuses the upgrade with an HTTP status and a JSON error, where the server can."""
    if DENIAL_EXTENSION in websocket.scope.get("extensions", {}):
        response = error_response(refusal.status, refusal.code, refusal.message, refusal.headers)
        await websocket.send_denial_response(response)
    else:  # closing before accept still refuses the upgrade (HTTP 403)
        await websocket.close(POLICY_VIOLATION, refusal.code)


@router.websocket("/v1/realtime")
async def realtime(websocket: WebSocket, model: str = DEFAULT_MODEL) -> None:
    try:
        with guard_of(websocket.app.state).admit(websocket):
            if model not in LOCAL_MODELS:
                # As a cloud API refuses a bad model: before the session starts.
                raise RealtimeRefused(400, "unknown_model", f"unknown model {model!r}")
            await websocket.accept()
            await serve_realtime(WebSocketChannel(websocket), model, append_limit=APPEND_LIMIT)
    except RealtimeRefused as refusal:
        await refuse(websocket, refusal)
