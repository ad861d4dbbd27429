"""Every error leaves as JSON `{"error": {"code", "message"}}` with a 4xx/5xx status.

`code` is the contract: the page words each code itself, in its own languages
(static/messages.js), so a new code needs words there. `message` is plain English for API
clients and logs; the page shows it only as a detail.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from relay import BackendError, PolicyViolation, RelayError, SessionNotFound, SignallingError
from relay.backends.client import BackendRejected
from relay.errors import AtCapacity

from .middleware.body_limit import BodyTooLarge

STATUS_FOR: list[tuple[type[RelayError], int, str]] = [
    (SignallingError, 400, "bad_offer"),
    (SessionNotFound, 404, "session_not_found"),
    (PolicyViolation, 403, "not_allowed"),
    (BackendRejected, 502, "backend_rejected_session"),  # before its base class
    (BackendError, 502, "backend_unavailable"),
    (AtCapacity, 503, "at_capacity"),
]


class ApiError(Exception):
    """An HTTP error with a code and a message in plain words."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {"error": {"code": code, "message": message}}
    return JSONResponse(body, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    async def api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    async def relay_error(request: Request, exc: Exception) -> JSONResponse:
        for kind, status, code in STATUS_FOR:
            if isinstance(exc, kind):
                headers = None
                if isinstance(exc, AtCapacity):
                    headers = {"Retry-After": str(exc.retry_after_s)}
                return error_response(status, code, str(exc), headers)
        return error_response(500, "relay_error", str(exc))

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        headers = dict(exc.headers) if exc.headers else None
        code = "body_too_large" if isinstance(exc, BodyTooLarge) else "http_error"
        return error_response(exc.status_code, code, str(exc.detail), headers)

    async def undecodable(request: Request, exc: Exception) -> JSONResponse:
        # Input that decodes but cannot be used: JSON nested past the parser's recursion limit,
        # or a string with a lone surrogate ("\ud800") that no UTF-8 encoder accepts.
        what = "is nested too deeply" if isinstance(exc, RecursionError) else "is not valid text"
        return error_response(400, "bad_request", f"the request {what}")

    async def disconnected(request: Request, exc: Exception) -> JSONResponse:
        # The client left mid-body: nobody reads this answer, but it is no server error.
        return error_response(400, "client_disconnected", "the request body was cut short")

    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        return error_response(500, "internal_error", "the server failed; it has been logged")

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}" for e in exc.errors()
        )
        return error_response(422, "invalid_request", problems)

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RelayError, relay_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(RecursionError, undecodable)
    app.add_exception_handler(UnicodeError, undecodable)
    app.add_exception_handler(ClientDisconnect, disconnected)
    app.add_exception_handler(Exception, internal_error)
