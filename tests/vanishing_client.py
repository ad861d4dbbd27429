"""A client peer in its own process, so a test can kill it without any goodbye."""

from __future__ import annotations

import asyncio
import sys

import httpx

from .media import ClientPeer, SpeechTrack
from .speech import tone


async def main(url: str) -> None:
    client = ClientPeer(SpeechTrack(tone(30_000)))
    async with httpx.AsyncClient(base_url=url) as http:
        body = await client.connect(http)
    connected = asyncio.Event()

    def on_state() -> None:
        if client.pc.connectionState == "connected":
            connected.set()

    client.pc.on("connectionstatechange", on_state)
    on_state()
    await asyncio.wait_for(connected.wait(), 20)
    print(body["session_id"], flush=True)  # noqa: T201
    await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
