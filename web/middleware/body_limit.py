"""Bounds every request body by its route's limit, before the app reads it into memory.

A declared Content-Length over the limit is refused with 413 at once; a chunked body is counted
as it arrives and the read that crosses the limit fails (BodyTooLarge, a 413 HTTPException, so
FastAPI's own body parsing passes it on), so no route ever holds more than its limit.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._responses import send_error


class BodyTooLarge(HTTPException):
    """The request body is larger than the route accepts."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body exceeds {limit} bytes")
        self.limit = limit


class BodyLimitMiddleware:
    """`limits`: (path prefix, bytes), the first matching prefix wins; else `default_bytes`."""

    def __init__(
        self, app: ASGIApp, *, limits: Sequence[tuple[str, int]], default_bytes: int
    ) -> None:
        self.app = app
        self.limits = list(limits)
        self.default_bytes = default_bytes

    def limit_for(self, path: str) -> int:
        for prefix, limit in self.limits:
            if path.startswith(prefix):
                return limit
        return self.default_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await send_error(send, 413, "body_too_large", f"the request body exceeds {limit} bytes")
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracked_send)
        except BodyTooLarge as exc:
            # Only reached when the app let it through unhandled.
            if started:
                raise
            await send_error(send, 413, "body_too_large", str(exc.detail))


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            # The HTTP server has already refused a malformed value.
            return int(value) if value.isdigit() else None
    return None
