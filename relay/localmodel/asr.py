"""Streaming speech recognition of pcm16 24 kHz utterances with pocketsphinx and its en-us model."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from types import TracebackType

from av import AudioFrame, AudioResampler
from pocketsphinx import Decoder

logger = logging.getLogger(__name__)

INPUT_RATE_HZ = 24_000
DECODER_RATE_HZ = 16_000


@dataclasses.dataclass(frozen=True)
class DecoderOptions:
    """Search passes of the decoder.

    The end-of-turn cost is what `finish()` does after the user stops: the first (fwdtree) pass
    already ran while they spoke. Measured on 20 piper sentences with 0.5 s trailing silence, on
    a busy 2-core machine: both later passes on, 67-92 ms median and 17-22 % WER; fwdflat off,
    11-47 ms and 18-21 %; fwdflat and bestpath off, 8-34 ms and 17-20 %. The later passes buy
    little accuracy on short turns, so both are off: the final transcript is then also what
    `partial()` showed last.
    """

    fwdflat: bool = False
    bestpath: bool = False
    cmn_init: str = "40,3,-1"


class RecognizerModel:
    """The en-us model shared by a process: a pool of loaded decoders, lent per utterance.

    A pocketsphinx decoder holds the acoustic and language models (about 90 MB, 0.5 s to load)
    and cannot share them, so decoders are lent out for one utterance at a time: a process
    loads as many as utterances are decoded at once, not one per session.
    """

    def __init__(self, options: DecoderOptions | None = None) -> None:
        self.options = options or DecoderOptions()
        self._lock = threading.Lock()
        self._idle: list[Decoder] = []
        self._loaded = 0

    @property
    def loaded(self) -> int:
        return self._loaded

    def preload(self, count: int = 1) -> None:
        """Load decoders now (e.g. at startup) so the first turn does not pay for it."""
        for decoder in [self.acquire() for _ in range(count)]:
            self.release(decoder)

    def acquire(self) -> Decoder:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        started = time.perf_counter()
        decoder = Decoder(
            samprate=DECODER_RATE_HZ,
            fwdflat=self.options.fwdflat,
            bestpath=self.options.bestpath,
            cmninit=self.options.cmn_init,
            loglevel="FATAL",
        )
        with self._lock:
            self._loaded += 1
            loaded = self._loaded
        logger.info(
            "loaded pocketsphinx decoder %d in %.2f s", loaded, time.perf_counter() - started
        )
        return decoder

    def release(self, decoder: Decoder) -> None:
        with self._lock:
            self._idle.append(decoder)


_shared_lock = threading.Lock()
_shared_model: RecognizerModel | None = None


def shared_recognizer_model() -> RecognizerModel:
    """The process-wide model with the default options."""
    global _shared_model
    with _shared_lock:
        if _shared_model is None:
            _shared_model = RecognizerModel()
        return _shared_model


class SpeechRecognizer:
    """Decodes one utterance at a time while it is spoken; methods are thread-safe."""

    def __init__(self, model: RecognizerModel | None = None) -> None:
        self._model = model or shared_recognizer_model()
        self._lock = threading.Lock()
        self._decoder: Decoder | None = None
        self._resampler: AudioResampler | None = None
        self._odd_byte = b""
        # Cepstral mean of this speaker: kept across utterances, since decoders are shared.
        self._cmn: str | None = None

    @property
    def active(self) -> bool:
        return self._decoder is not None

    def start(self) -> None:
        """Begin an utterance (abandoning one still open)."""
        with self._lock:
            self._abandon()
            decoder = self._model.acquire()
            try:
                decoder.set_cmn(self._cmn or self._model.options.cmn_init)
                decoder.start_utt()
            except Exception:
                self._model.release(decoder)
                raise
            self._decoder = decoder
            self._resampler = AudioResampler(format="s16", layout="mono", rate=DECODER_RATE_HZ)
            self._odd_byte = b""

    def feed(self, pcm24k: bytes) -> None:
        """Decode more of the utterance: pcm16 24 kHz mono, any length."""
        with self._lock:
            decoder, resampler = self._open()
            data = self._odd_byte + pcm24k
            whole = len(data) // 2 * 2
            self._odd_byte = data[whole:]
            if whole:
                for pcm in _resample(resampler, data[:whole]):
                    decoder.process_raw(pcm)

    def partial(self) -> str:
        """The best hypothesis so far (empty between utterances)."""
        with self._lock:
            if self._decoder is None:
                return ""
            return _hypothesis(self._decoder)

    def finish(self) -> str:
        """End the utterance and return its final transcript (empty if none was started)."""
        with self._lock:
            decoder, resampler = self._decoder, self._resampler
            if decoder is None or resampler is None:
                return ""
            self._decoder = self._resampler = None
            try:
                for pcm in _resample(resampler, None):
                    decoder.process_raw(pcm)
                decoder.end_utt()
                text = _hypothesis(decoder)
                self._cmn = decoder.get_cmn(False)
            finally:
                self._model.release(decoder)
            return text

    def cancel(self) -> None:
        """Drop the utterance without decoding the rest."""
        with self._lock:
            self._abandon()

    def close(self) -> None:
        self.cancel()

    def __enter__(self) -> SpeechRecognizer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _open(self) -> tuple[Decoder, AudioResampler]:
        if self._decoder is None or self._resampler is None:
            raise RuntimeError("no utterance: call start() first")
        return self._decoder, self._resampler

    def _abandon(self) -> None:
        decoder, self._decoder, self._resampler = self._decoder, None, None
        if decoder is not None:
            try:
                decoder.end_utt()
            finally:
                self._model.release(decoder)


def _hypothesis(decoder: Decoder) -> str:
    hyp = decoder.hyp()
    return str(hyp.hypstr).strip() if hyp is not None else ""


def _resample(resampler: AudioResampler, pcm: bytes | None) -> list[bytes]:
    """pcm16 24 kHz in, pcm16 16 kHz out; None flushes the resampler's delay line."""
    frame: AudioFrame | None = None
    if pcm is not None:
        frame = AudioFrame(format="s16", layout="mono", samples=len(pcm) // 2)
        frame.planes[0].update(pcm)
        frame.sample_rate = INPUT_RATE_HZ
    out = []
    for resampled in resampler.resample(frame):
        size = resampled.samples * 2
        out.append(bytes(resampled.planes[0])[:size])
    return out
