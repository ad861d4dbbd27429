"""The floor: a bare aiortc peer that sends back the audio it receives, behind the same signalling.

`POST /api/sessions` (JSON offer) and `DELETE /api/sessions/{id}` as voice-relay has them, so the
load client cannot tell the two apart. No resampling, no backend, no data-channel events: what
this costs is what any aiortc audio relay pays before doing anything.

    python -m benchmarks.echo_server --port 8002 [--stock-audio-level]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from relay.peer import create_peer_connection

from . import rtp_level


def create_echo_app(host_addresses: list[str]) -> FastAPI:
    peers: dict[str, RTCPeerConnection] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await asyncio.gather(*(pc.close() for pc in list(peers.values())))

    app = FastAPI(title="aiortc echo (benchmark floor)", lifespan=lifespan, openapi_url=None)

    @app.get("/health")
    async def health() -> dict[str, int]:
        return {"sessions": len(peers)}

    @app.post("/api/sessions", status_code=201)
    async def create(request: Request) -> JSONResponse:
        body = await request.json()
        session_id = secrets.token_urlsafe(12)
        pc = create_peer_connection([], host_addresses)
        peers[session_id] = pc

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "audio":
                pc.addTrack(track)

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState in ("failed", "closed") and peers.pop(session_id, None):
                await pc.close()

        await pc.setRemoteDescription(RTCSessionDescription(body["sdp"], body["type"]))
        await pc.setLocalDescription(await pc.createAnswer())
        answer = pc.localDescription
        return JSONResponse(
            {"session_id": session_id, "sdp": answer.sdp, "type": answer.type}, status_code=201
        )

    @app.delete("/api/sessions/{session_id}", status_code=204)
    async def delete(session_id: str) -> Response:
        pc = peers.pop(session_id, None)
        if pc is None:
            return Response(status_code=404)
        await pc.close()
        pc.remove_all_listeners()
        return Response(status_code=204)

    return app


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.echo_server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8002)
    parser.add_argument(
        "--stock-audio-level",
        action="store_true",
        help="keep aiortc's pure-Python audio level (the default: benchmarks.rtp_level)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    addresses = os.environ.get("VOICE_RELAY_ICE_ADDRESSES", "")  # as the relay reads it
    host_addresses = [a.strip() for a in addresses.split(",") if a.strip()]
    if not args.stock_audio_level:
        rtp_level.install()
    app = create_echo_app(host_addresses)
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level="warning")
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
