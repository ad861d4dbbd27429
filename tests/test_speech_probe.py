"""The benchmark's `speech` probe (benchmarks/speech_probe.py), without a server.

- a question's voice-end time is the send time of its last voiced packet, and silence follows;
- the reply listener finds the first loud frame after it is armed and waits out a reply's end.
"""

from __future__ import annotations

import asyncio
import fractions

import numpy as np
import pytest
from av import AudioFrame

from benchmarks.speech_probe import REPLY_END_S, Question, QuestionTrack, ReplyListener

from .speech import tone

pytestmark = pytest.mark.unit


def frame_of(pcm: bytes) -> AudioFrame:
    frame = AudioFrame(format="s16", layout="mono", samples=len(pcm) // 2)
    frame.planes[0].update(pcm)
    frame.sample_rate = 24_000
    frame.time_base = fractions.Fraction(1, 24_000)
    return frame


async def test_question_voice_end_is_the_send_time_of_its_last_voiced_packet() -> None:
    track = QuestionTrack(silent_packet=b"S")
    loop = asyncio.get_running_loop()
    assert bytes(await track.recv()) == b"S"  # silence until asked
    voice_end = track.ask(Question("q", [b"a", b"b", b"c", b"t"], voiced_frames=3))
    sent = [bytes(await track.recv()) for _ in range(5)]
    assert sent == [b"a", b"b", b"c", b"t", b"S"]
    assert voice_end.done()
    third_sent_at = voice_end.result()
    assert third_sent_at < loop.time() - 0.03  # sent two frames (40 ms) before the last one
    track.stop()


async def test_reply_listener_finds_the_onset_after_arming_and_the_end_of_the_reply() -> None:
    listener = ReplyListener()
    loop = asyncio.get_running_loop()
    quiet, loud = frame_of(bytes(960)), frame_of(tone(20))
    listener.feed(loud, 1.0)  # an earlier reply
    listener.expect()
    listener.feed(quiet, 2.0)
    assert await listener.onset(0.01) is None
    listener.feed(loud, 2.5)
    listener.feed(loud, 2.52)
    assert await listener.onset(0.01) == 2.5
    listener.feed(loud, loop.time())
    started = loop.time()
    await listener.quiet()
    assert loop.time() - started >= REPLY_END_S - 0.01
    assert np.isclose(listener.loud_at or 0.0, started, atol=0.01)
