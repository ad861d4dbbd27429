"""libopus through ctypes: mono Opus at the model's 24 kHz, encoded and decoded without PyAV.

PyAV's Opus decoder always outputs 48 kHz (24 kHz then needs a resampler) and its encoder
goes through AudioFrame and codec-context machinery; per 20 ms frame that costs about twice
what libopus itself does. libopus decodes straight to 24 kHz mono and encodes from it. The
library is the one PyAV's wheel ships (the same code aiortc uses), else the system's `libopus`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import weakref
from functools import cache
from pathlib import Path

import av

from protocol.audio import PCM_RATE_HZ, SAMPLE_BYTES

APPLICATION_RESTRICTED_LOWDELAY = 2051  # CELT only: 2.5 ms of look-ahead
SET_BITRATE_REQUEST = 4002
SET_COMPLEXITY_REQUEST = 4010
MAX_FRAME_SAMPLES = PCM_RATE_HZ * 120 // 1000  # the longest Opus packet: 120 ms
MAX_PACKET_BYTES = 1500


class OpusError(RuntimeError):
    """libopus refused a call; the message is libopus's own."""


@cache
def library() -> ctypes.CDLL:
    """PyAV's bundled libopus, else the system's; raises OpusError if there is none."""
    av_dir = Path(av.__file__).resolve().parent
    bundled = sorted(av_dir.parent.glob("av.libs/libopus*.so*")) + sorted(
        av_dir.glob(".dylibs/libopus*.dylib")
    )
    name = str(bundled[0]) if bundled else ctypes.util.find_library("opus")
    if name is None:
        raise OpusError("libopus not found: install PyAV from its wheels or the system libopus")
    lib = ctypes.CDLL(name)
    lib.opus_strerror.restype = ctypes.c_char_p
    lib.opus_strerror.argtypes = [ctypes.c_int]
    lib.opus_encoder_create.restype = ctypes.c_void_p
    lib.opus_encoder_create.argtypes = [
        ctypes.c_int32, ctypes.c_int, ctypes.c_int, ctypes.POINTER(ctypes.c_int)
    ]  # fmt: skip
    lib.opus_encode.restype = ctypes.c_int32
    lib.opus_encode.argtypes = [
        ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int32
    ]  # fmt: skip
    lib.opus_encoder_destroy.argtypes = [ctypes.c_void_p]
    lib.opus_decoder_create.restype = ctypes.c_void_p
    lib.opus_decoder_create.argtypes = [ctypes.c_int32, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
    lib.opus_decode.restype = ctypes.c_int
    lib.opus_decode.argtypes = [
        ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int32,
        ctypes.c_char_p, ctypes.c_int, ctypes.c_int,
    ]  # fmt: skip
    lib.opus_decoder_destroy.argtypes = [ctypes.c_void_p]
    # opus_encoder_ctl is variadic: Encoder._ctl passes each argument as a ctypes value.
    lib.opus_encoder_ctl.restype = ctypes.c_int
    return lib


def _check(code: int) -> int:
    if code < 0:
        message = library().opus_strerror(code) or b"unknown error"
        raise OpusError(message.decode())
    return code


class Encoder:
    """pcm16 24 kHz mono in, one Opus packet per call out (restricted low-delay mode)."""

    def __init__(self, bit_rate: int, complexity: int) -> None:
        lib = library()
        error = ctypes.c_int()
        state = lib.opus_encoder_create(
            PCM_RATE_HZ, 1, APPLICATION_RESTRICTED_LOWDELAY, ctypes.byref(error)
        )
        _check(error.value)
        self._state = state
        weakref.finalize(self, lib.opus_encoder_destroy, state)
        self._ctl(SET_BITRATE_REQUEST, bit_rate)
        self._ctl(SET_COMPLEXITY_REQUEST, complexity)
        self._out = ctypes.create_string_buffer(MAX_PACKET_BYTES)

    def _ctl(self, request: int, value: int) -> None:
        # Variadic: every argument typed explicitly (a bare int would pass as a 32-bit int).
        state = ctypes.c_void_p(self._state)
        _check(library().opus_encoder_ctl(state, ctypes.c_int(request), ctypes.c_int32(value)))

    def encode(self, pcm: bytes) -> bytes:
        samples = len(pcm) // SAMPLE_BYTES
        size = _check(library().opus_encode(self._state, pcm, samples, self._out, MAX_PACKET_BYTES))
        return self._out.raw[:size]


class Decoder:
    """Opus packets in, pcm16 24 kHz mono out (whatever rate and channels they were coded at)."""

    def __init__(self) -> None:
        lib = library()
        error = ctypes.c_int()
        state = lib.opus_decoder_create(PCM_RATE_HZ, 1, ctypes.byref(error))
        _check(error.value)
        self._state = state
        weakref.finalize(self, lib.opus_decoder_destroy, state)
        self._out = ctypes.create_string_buffer(MAX_FRAME_SAMPLES * SAMPLE_BYTES)

    def decode(self, packet: bytes) -> bytes:
        samples = _check(
            library().opus_decode(self._state, packet, len(packet), self._out, MAX_FRAME_SAMPLES, 0)
        )
        return self._out.raw[: samples * SAMPLE_BYTES]

    def conceal(self, samples: int) -> bytes:
        """`samples` of packet-loss concealment: the voice carried on, fading out."""
        decoded = _check(library().opus_decode(self._state, None, 0, self._out, samples, 0))
        return self._out.raw[: decoded * SAMPLE_BYTES]
