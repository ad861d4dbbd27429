"""GET /api/ice-servers: the ICE servers a page uses for its next call, with fresh TURN
credentials; asked just before each call and each reconnect, never cached."""

from __future__ import annotations

import json
import math
import time
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from limits.aio.storage import MemoryStorage

from ..admission import check_access
from ..deps import LinksDep, SettingsDep, SignerDep
from ..errors import ApiError
from ..links.limits import MINUTE_S, MovingWindow
from ..turn import page_ice_servers

router = APIRouter(prefix="/api/ice-servers", tags=["ice"])

# A call asks once and a reconnect once more; the rest is room for retries.
REQUESTS_PER_SESSION = 3


def ice_rate() -> MovingWindow:
    """Requests per client address and minute (each process counts its own, as for sessions)."""
    return MovingWindow(MemoryStorage(), "ice-servers", MINUTE_S)


def get_ice_rate(request: Request) -> MovingWindow:
    rate = request.app.state.ice_rate
    assert isinstance(rate, MovingWindow)
    return rate


@router.get("")
async def ice_servers(
    request: Request,
    settings: SettingsDep,
    links: LinksDep,
    signer: SignerDep,
    rate: Annotated[MovingWindow, Depends(get_ice_rate)],
    link: str | None = None,
    token: str | None = None,
) -> Response:
    await check_access(request, settings, links, signer, link, token)
    client_ip = request.client.host if request.client else "unknown"
    limit = REQUESTS_PER_SESSION * settings.sessions_per_ip_per_minute
    wait_s = await rate.take(client_ip, limit)
    if wait_s is not None:
        retry = str(max(1, math.ceil(wait_s)))
        message = "Too many requests for ICE servers from your address; please wait a minute."
        raise ApiError(429, "rate_limited", message, {"Retry-After": retry})
    body = {"iceServers": page_ice_servers(settings, time.time()), "ttl": settings.turn_ttl_s}
    return Response(
        json.dumps(body), media_type="application/json", headers={"Cache-Control": "no-store"}
    )
