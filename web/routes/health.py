"""Probes for load balancers and orchestrators: `/healthz` (alive) and `/readyz` (taking calls).

`/readyz` is 503 while the process drains (after SIGTERM, web/server.py) and also while it is
at capacity: a full instance would refuse the next call, so a load balancer should send it to
another one; it is ready again as soon as a conversation ends. Neither says how many calls run.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ..deps import SettingsDep
from ..errors import error_response
from ..workers import pool_of, relay_sessions
from .realtime import guard_of

router = APIRouter(tags=["health"])

NO_STORE = {"Cache-Control": "no-store"}


@router.get("/healthz")
async def healthz() -> JSONResponse:
    """200 while the process serves requests, draining or not: restart it only when this fails."""
    return JSONResponse({"status": "ok"}, headers=NO_STORE)


@router.get("/readyz")
async def readyz(request: Request, settings: SettingsDep) -> JSONResponse:
    if getattr(request.app.state, "draining", False):
        return error_response(503, "draining", "this server is shutting down", NO_STORE)
    live = relay_sessions(request.app.state) + guard_of(request.app.state).outside
    if live >= settings.resolved_max_sessions:
        return error_response(503, "at_capacity", "this server is running its most calls", NO_STORE)
    workers = pool_of(request.app.state)
    if workers is not None and not workers.live():
        return error_response(
            503, "at_capacity", "this server's media workers are restarting", NO_STORE
        )
    return JSONResponse({"status": "ready"}, headers=NO_STORE)
