"""The embedded local backend, served as a realtime-protocol WebSocket at /v1/realtime."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter, WebSocket

from localmodel.models import DEFAULT_MODEL, LOCAL_MODELS
from localmodel.server import serve_realtime

router = APIRouter(tags=["realtime"])

POLICY_VIOLATION = 1008


class WebSocketChannel:
    """Adapts Starlette's WebSocket to the local model's MessageChannel."""

    def __init__(self, websocket: WebSocket) -> None:
        self._websocket = websocket

    async def send(self, message: str) -> None:
        await self._websocket.send_text(message)

    async def __aiter__(self) -> AsyncIterator[str | bytes]:
        async for message in self._websocket.iter_text():
            yield message


@router.websocket("/v1/realtime")
async def realtime(websocket: WebSocket, model: str = DEFAULT_MODEL) -> None:
    if model not in LOCAL_MODELS:
        # Closing before accept refuses the upgrade (HTTP 403), as a cloud API refuses a bad model.
        await websocket.close(POLICY_VIOLATION, f"unknown model {model!r}")
        return
    await websocket.accept()
    await serve_realtime(WebSocketChannel(websocket), model)
