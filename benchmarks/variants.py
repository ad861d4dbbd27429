"""`voice-relay serve` with named optimizations undone, to measure what each one saves in one run.

    python -m benchmarks.variants aiortc-encoder+no-catch-up --host 127.0.0.1 --port 8000

`relay_bench --relay-variant NAME` starts one of these next to the real relay as target
`relay-NAME`. Each variant turns off one `MediaOptions` field (relay/media.py); the app is the
product's, served as `voice-relay serve` serves it.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys

from relay import MediaOptions
from web.app import create_app
from web.server import RelayServer
from web.settings import Settings

from . import rtp_level
from .scenarios import RELAY_VARIANTS

VARIANTS: dict[str, dict[str, bool]] = {
    # Playout as 48 kHz frames encoded by aiortc: the relay before relay/opus.py.
    "aiortc-encoder": {"opus_packets": False},
    # Received audio decoded to stereo in aiortc's decoder thread: before relay/decoding.py.
    "aiortc-decoder": {"loop_decoder": False},
    # aiortc's 80 ms audio jitter buffer in front of the loop decoder: before relay/reorder.py.
    "aiortc-jitter-buffer": {"reorder_buffer": False},
    # Audio that arrives after an underrun waits for the next 20 ms tick (before the wake).
    "paced-after-underrun": {"wake_on_audio": False},
    # A real-time stream keeps whatever a burst added to the playout buffer (before catch-up).
    "no-catch-up": {"catch_up": False},
}
assert tuple(VARIANTS) == RELAY_VARIANTS


def media_options(names: str) -> MediaOptions:
    """The options of `NAME[+NAME...]`; raises KeyError for an unknown name."""
    changes: dict[str, bool] = {}
    for name in names.split("+"):
        changes.update(VARIANTS[name])
    return dataclasses.replace(MediaOptions(), **changes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.variants")
    parser.add_argument("variants", metavar="NAME[+NAME]", help=", ".join(VARIANTS))
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    media = media_options(args.variants)
    if not media.opus_packets:
        # aiortc's sender computes each frame's RTP audio level in Python; the floor echo uses
        # the numpy version too, so that this loop does not inflate either.
        rtp_level.install()
    settings = Settings(host=args.host, port=args.port)
    logging.basicConfig(level=settings.log_level.upper())
    app = create_app(settings, media=media)
    RelayServer(app, host=args.host, port=args.port, log_level=settings.log_level.lower()).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
