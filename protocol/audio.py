"""The realtime protocol's audio: pcm16 little-endian, 24 kHz, mono; and the rates around it."""

from __future__ import annotations

PCM_RATE_HZ = 24_000  # input_audio_buffer.append and response.audio.delta
RECOGNIZER_RATE_HZ = 16_000  # what speech recognizers and Silero VAD take
FRAME_MS = 20
SAMPLE_BYTES = 2
BYTES_PER_MS = PCM_RATE_HZ * SAMPLE_BYTES // 1000  # 48 bytes per ms of pcm16 24 kHz mono
FRAME_SAMPLES = PCM_RATE_HZ * FRAME_MS // 1000  # 480
FRAME_BYTES = FRAME_SAMPLES * SAMPLE_BYTES  # 960
FRAME_S = FRAME_MS / 1000


def pcm_ms(pcm: bytes | bytearray | memoryview) -> float:
    """Duration of pcm16 24 kHz mono audio in milliseconds."""
    return len(pcm) / BYTES_PER_MS
