"""Signalling: POST an SDP offer, get the answer and a session id; DELETE to hang up."""

from __future__ import annotations

import contextlib

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ValidationError

from relay import parse_offer
from relay.errors import AtCapacity

from ..admission import admit, refuse_while_draining
from ..backend import backend_config, session_options
from ..cluster import cluster_of
from ..deps import LimiterDep, LinksDep, RegistryDep, SettingsDep, SignerDep
from ..errors import ApiError
from ..links.redis_store import RedisError
from ..metrics import Metrics
from ..workers import pool_of
from .realtime import guard_of

router = APIRouter(prefix="/api/sessions", tags=["sessions"])

MAX_BODY_BYTES = 64 * 1024
SDP_TYPE = "application/sdp"
JSON_TYPE = "application/json"


class OfferIn(BaseModel):
    sdp: str
    type: str = "offer"
    link: str | None = None  # a demo link's slug: its persona and limits apply
    token: str | None = None  # a private link's signed token


class AnswerOut(BaseModel):
    session_id: str
    sdp: str
    type: str


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The request body, refusing more than `limit` bytes before reading them all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "body_too_large", f"the request body exceeds {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ApiError(413, "body_too_large", f"the request body exceeds {limit} bytes")
    return bytes(body)


def parse_json_offer(body: bytes) -> OfferIn:
    try:
        # pydantic's parser bounds nesting and refuses lone surrogates, unlike json.loads.
        return OfferIn.model_validate_json(body)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"]) or "body"
        raise ApiError(
            400,
            "bad_offer",
            f'the body must be JSON like {{"sdp": "v=0...", "type": "offer"}} ({where}: '
            f"{error['msg']})",
        ) from None


@router.post("", status_code=201, response_model=AnswerOut)
async def create_session(
    request: Request,
    registry: RegistryDep,
    settings: SettingsDep,
    links: LinksDep,
    signer: SignerDep,
    limiter: LimiterDep,
) -> Response:
    metrics: Metrics = request.app.state.metrics
    try:
        refuse_while_draining(request)
    except ApiError as refusal:
        metrics.refused(refusal.code)
        raise
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in (SDP_TYPE, JSON_TYPE):
        raise ApiError(
            415, "unsupported_media_type", f"send the offer as {JSON_TYPE} or {SDP_TYPE}"
        )
    body = await read_body(request)
    if content_type == SDP_TYPE:
        # Raw SDP (as WHIP): the link and token travel in the query string.
        offer = parse_offer(body.decode("utf-8", errors="replace"))
        slug, token = request.query_params.get("link"), request.query_params.get("token")
    else:
        parsed = parse_json_offer(body)
        offer = parse_offer(parsed.sdp, parsed.type)
        slug, token = parsed.link, parsed.token
    try:
        link, lease = await admit(request, settings, links, signer, limiter, slug, token)
    except ApiError as refusal:
        metrics.refused(refusal.code)
        raise
    # Outside clients of /v1/realtime share the maximum with the relay's sessions.
    max_sessions = settings.resolved_max_sessions - guard_of(request.app.state).outside
    workers = pool_of(request.app.state)
    try:
        if workers is not None:  # placed on the least-loaded media worker (web/workers/)
            session_id, answer = await workers.create(
                offer, link, max_sessions=max_sessions, on_closed=lease.release
            )
        else:
            session, answer = await registry.create(
                offer,
                backend_config(settings, link),
                max_sessions=max_sessions,
                options=session_options(settings, link, registry.options.media),
                on_closed=lambda _: lease.release(),
                link=link.slug if link is not None else None,
            )
            session_id = session.id
    except AtCapacity:
        metrics.refused("at_capacity")
        # A full server does not use up the caller's rate or the link's quota; a lost Redis
        # keeps them counted, and the caller still hears at_capacity.
        with contextlib.suppress(RedisError):
            await lease.refund()
        raise
    except BaseException:
        lease.release()
        raise
    location = f"/api/sessions/{session_id}"
    if content_type == SDP_TYPE:
        return Response(
            answer.sdp,
            status_code=201,
            media_type=SDP_TYPE,
            headers={"Location": location, "X-Session-Id": session_id},
        )
    out = AnswerOut(session_id=session_id, sdp=answer.sdp, type=answer.type)
    return Response(
        out.model_dump_json(), status_code=201, media_type=JSON_TYPE, headers={"Location": location}
    )


@router.delete("/{session_id}", status_code=204)
async def delete_session(session_id: str, request: Request) -> Response:
    await cluster_of(request).hang_up(session_id)  # on whichever instance runs it
    return Response(status_code=204)
