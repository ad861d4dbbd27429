"""UtteranceRecorder: keeps the audio of the user's current turn for tone-of-voice analysis."""

from __future__ import annotations

from collections import deque

from protocol.audio import BYTES_PER_MS

PRE_ROLL_MS = 500  # the VAD reports speech a little after it began
MAX_UTTERANCE_MS = 30_000


class UtteranceRecorder:
    """Fed every uplink chunk; between `start()` and `stop()` it keeps them (bounded)."""

    def __init__(self) -> None:
        self._pre_roll: deque[bytes] = deque()
        self._pre_roll_bytes = 0
        self._utterance: bytearray | None = None

    @property
    def recording(self) -> bool:
        return self._utterance is not None

    def feed(self, pcm: bytes) -> None:
        if self._utterance is not None:
            if len(self._utterance) + len(pcm) <= MAX_UTTERANCE_MS * BYTES_PER_MS:
                self._utterance += pcm
            return
        self._pre_roll.append(pcm)
        self._pre_roll_bytes += len(pcm)
        while self._pre_roll_bytes - len(self._pre_roll[0]) >= PRE_ROLL_MS * BYTES_PER_MS:
            self._pre_roll_bytes -= len(self._pre_roll.popleft())

    def start(self) -> None:
        self._utterance = bytearray(b"".join(self._pre_roll))
        self._pre_roll.clear()
        self._pre_roll_bytes = 0

    def stop(self) -> bytes:
        """The turn's audio (empty if none was being recorded)."""
        audio = bytes(self._utterance or b"")
        self._utterance = None
        return audio
