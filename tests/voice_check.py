"""Is a voice understood? Reply sentences synthesized, then recognised back by Whisper base.

For the Mandarin voice's intelligibility test (tests/test_kokoro.py) and its benchmark
(benchmarks/mandarin_voice.py). Numbers count as said however they are written: both sides
go through cn2an ("56" = "五十六") before the character error rate is taken.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from protocol.audio import PCM_RATE_HZ
from protocol.resample import resample_pcm
from tests.transcripts import char_error_rate

if TYPE_CHECKING:
    from localmodel.whisper import WhisperRecognizer

# What the assistant says in Mandarin: greetings, rule answers (numbers, time), small talk.
MANDARIN_REPLIES = (
    "今天天气很好。",
    "我是你的语音助手，很高兴认识你。",
    "七乘以八等于五十六。",
    "现在是下午三点十五分。",
    "你今天看起来有点累，早点休息吧。",
    "有什么我可以帮你的吗？",
    "谢谢你，再见！",
    "我可以告诉你时间，也可以帮你算数。",
    "你好，很高兴见到你。",
    "今天是星期三，明天是星期四。",
    "我不太明白你的意思，请再说一遍。",
    "七除以二等于三点五。",
    "好的，我马上帮你查一下。",
    "祝你有美好的一天！",
    "我叫小艾，是一个离线语音助手。",
    "累了就休息一会儿，喝杯水吧。",
)


@functools.cache
def whisper_base() -> WhisperRecognizer:
    from localmodel.whisper import BASE, WhisperRecognizer

    return WhisperRecognizer(BASE, threads=1)


def heard(pcm: bytes, language: str = "zh") -> str:
    """What Whisper base hears in `pcm` (pcm16 24 kHz mono)."""
    audio = np.frombuffer(resample_pcm(pcm, PCM_RATE_HZ, 16_000), dtype="<i2")
    return whisper_base().transcribe(audio.astype(np.float32) / 32768, language).text


def mandarin_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Character error rate, numbers written either way counting the same."""
    import cn2an

    def spelled(text: str) -> str:
        return str(cn2an.transform(text, "an2cn"))

    return char_error_rate([spelled(r) for r in references], [spelled(h) for h in hypotheses])
