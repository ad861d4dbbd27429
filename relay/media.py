"""MediaOptions: how the relay moves audio. The defaults are the product; each field set to False
undoes one optimization, so that the benchmark measures it in the same run (benchmarks/variants.py,
docs/performance.md)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MediaOptions:
    # Received Opus decoded by libopus in the event loop, straight to pcm16 24 kHz mono
    # (relay/decoding.py). False: aiortc's decoder thread (48 kHz stereo) and a resampler reading
    # its track; aiortc's jitter buffer comes with it, whatever `reorder_buffer` says.
    loop_decoder: bool = True
    # In front of the loop decoder: packets passed on in order at once, a gap concealed after
    # 40 ms (relay/reorder.py). False: aiortc's jitter buffer (80 ms of prefetch, a stall on loss).
    reorder_buffer: bool = True
    # Playout sent as ready Opus packets, 24 kHz mono (relay/opus.py). False: 48 kHz frames that
    # aiortc resamples to stereo and encodes in its executor.
    opus_packets: bool = True
    # Audio that arrives after a playout underrun goes out at once. False: it waits for the next
    # 20 ms tick.
    wake_on_audio: bool = True
    # A real-time stream's playout buffer drains back to one spare frame after a burst. False: the
    # burst stays as latency.
    catch_up: bool = True
