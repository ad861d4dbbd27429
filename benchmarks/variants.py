"""`voice-relay` with named optimizations undone, to measure what each one saves in the same run.

    python -m benchmarks.variants stock-audio-level+24k-playout serve --port 8000

`relay_bench --relay-variant NAME` starts one of these next to the real relay as target
`relay-NAME`. Variants patch only this process; nothing here is used by the product.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Any

from relay import rtp_level, session
from relay.playout import PlayoutTrack
from web import cli

from .scenarios import RELAY_VARIANTS


def stock_audio_level() -> None:
    """aiortc's pure-Python RTP audio level (before relay.rtp_level)."""
    rtp_level.install = lambda: None  # type: ignore[assignment]


def playout_24k() -> None:
    """Playout frames at 24 kHz, re-framed by aiortc's encoder (before WebRtcResampler)."""

    class Playout24k(PlayoutTrack):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["webrtc_rate"] = False
            super().__init__(*args, **kwargs)

    session.PlayoutTrack = Playout24k  # type: ignore[misc]


def paced_after_underrun() -> None:
    """Audio that arrives after an underrun waits for the next 20 ms tick (before the wake)."""

    async def sleep(self: PlayoutTrack, loop: asyncio.AbstractEventLoop, delay: float) -> bool:
        await asyncio.sleep(delay)
        return False

    PlayoutTrack._sleep = sleep  # type: ignore[method-assign]


def no_catch_up() -> None:
    """A real-time stream keeps whatever a burst added to the playout buffer (before catch-up)."""
    PlayoutTrack._has_spare_audio = lambda self: False  # type: ignore[method-assign]


VARIANTS: dict[str, Callable[[], None]] = {
    "stock-audio-level": stock_audio_level,
    "24k-playout": playout_24k,
    "paced-after-underrun": paced_after_underrun,
    "no-catch-up": no_catch_up,
}
assert tuple(VARIANTS) == RELAY_VARIANTS


def main() -> int:
    names, argv = sys.argv[1], sys.argv[2:]
    for name in names.split("+"):
        VARIANTS[name]()
    return cli.main(argv)


if __name__ == "__main__":
    sys.exit(main())
