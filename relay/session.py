"""Session: one conversation, one peer connection, one backend socket, their tasks and teardown."""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import json
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCDataChannel, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from protocol.prosody import analyze_utterance

from . import events
from .backends import BackendConfig, RealtimeClient, dialect_for
from .backends.client import error_message
from .backends.dialect import Event
from .decoding import decode_in_loop
from .errors import BackendError, PolicyViolation, SignallingError
from .events import PageEvent, State
from .peer import IceServerConfig, add_opus_audio, create_peer_connection
from .playout import PlayoutTrack
from .policy import Interrupt, TextMessage, parse_client_event
from .uplink import Uplink
from .utterance import UtteranceRecorder

logger = logging.getLogger(__name__)

MAX_PENDING_PAGE_EVENTS = 32
MAX_TRACKED_RESPONSES = 16
BENIGN_ERROR_WINDOW_S = 2.0  # errors this soon after our cancel/truncate are races, not faults


@dataclass(frozen=True)
class SessionOptions:
    ice_servers: Sequence[IceServerConfig] = ()
    max_duration_s: float = 1800.0


@dataclass
class SessionStats:
    turns: int = 0
    interruptions: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    late_deltas_dropped: int = 0


class Session:
    """Relays one browser peer to one realtime backend until either side ends."""

    def __init__(
        self,
        session_id: str,
        backend: BackendConfig,
        options: SessionOptions,
        on_closed: Callable[[Session], None] | None = None,
    ) -> None:
        self.id = session_id
        self.backend = backend
        self.options = options
        self.stats = SessionStats()
        self.reason: str | None = None
        self._on_closed = on_closed
        self._loop = asyncio.get_running_loop()
        self._started_at = self._loop.time()
        self._client = RealtimeClient(backend, dialect_for(backend.dialect))
        self.playout = PlayoutTrack(
            on_item_started=self._on_item_started, on_drained=self._on_drained
        )
        self.pc: RTCPeerConnection = create_peer_connection(options.ice_servers)
        self._uplink: Uplink | None = None
        self._uplink_task: asyncio.Task[None] | None = None
        self._backend_task: asyncio.Task[None] | None = None
        self._close_task: asyncio.Task[None] | None = None
        self._closed: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._channel: RTCDataChannel | None = None
        self._pending_page: deque[PageEvent] = deque(maxlen=MAX_PENDING_PAGE_EVENTS)
        self._state: State | None = None
        self._user_speaking = False
        self._turn_end_t: float | None = None
        self._active_response: str | None = None
        self._active_item: str | None = None
        self._cancelled: deque[str] = deque(maxlen=MAX_TRACKED_RESPONSES)
        self._last_cancel_t = -1e9
        self._texts: dict[str, str] = {}
        self._backend_failure: str | None = None
        self._utterance = UtteranceRecorder()
        self._tone_task: asyncio.Task[None] | None = None

    # -- signalling -------------------------------------------------------------------------

    async def answer(self, offer: RTCSessionDescription) -> RTCSessionDescription:
        """Negotiate with the page's offer while the backend socket opens."""
        self.pc.on("track", self._on_track)
        self.pc.on("datachannel", self._on_datachannel)
        self.pc.on("connectionstatechange", self._on_connection_state)
        self._backend_task = asyncio.create_task(
            self._run_backend(), name=f"session-{self.id}-backend"
        )
        self._timer = self._loop.call_later(
            self.options.max_duration_s, self.close_soon, "max_duration"
        )
        self._set_state(State.CONNECTING)
        try:
            audio = add_opus_audio(self.pc, self.playout)
            await self.pc.setRemoteDescription(offer)
            if audio.receiver.track is not None:  # the page sends audio (it may only listen)
                decode_in_loop(audio.receiver)
            await self.pc.setLocalDescription(await self.pc.createAnswer())
        except Exception as exc:  # aiortc raises many types for SDP it cannot use
            failure = self._backend_failure
            await self.close("bad_offer" if failure is None else "backend_error")
            if failure is not None:
                raise BackendError(failure) from None
            raise SignallingError(f"the SDP offer could not be negotiated: {exc}") from None
        if self._backend_failure is not None:
            await self.close("backend_error")
            raise BackendError(self._backend_failure)
        description = self.pc.localDescription
        assert description is not None
        return description

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind != "audio" or self._uplink is not None:
            return
        self._uplink = Uplink(track, self._on_uplink_audio)
        self._uplink_task = asyncio.create_task(
            self._uplink.run(), name=f"session-{self.id}-uplink"
        )

    def _on_uplink_audio(self, pcm: bytes) -> None:
        self._client.append_audio(pcm)
        self._utterance.feed(pcm)

    def _on_datachannel(self, channel: RTCDataChannel) -> None:
        self._channel = channel
        channel.on("message", self._on_page_message)
        channel.on("open", self._flush_page_events)
        self._flush_page_events()

    async def _on_connection_state(self) -> None:
        state = self.pc.connectionState
        if state == "connected" and self._client.connected:
            self._set_state(State.LISTENING)
        elif state in ("failed", "closed"):
            self.close_soon("ice_" + state if state == "failed" else "peer_closed")

    # -- backend ----------------------------------------------------------------------------

    async def _run_backend(self) -> None:
        reason = "backend_closed"
        try:
            await self._client.connect()
            greeting = self._client.dialect.greeting_event(self.backend)
            if greeting is not None:
                self._client.send(greeting)
            if self.pc.connectionState == "connected":
                self._set_state(State.LISTENING)
            async for event in self._client.events():
                self._on_backend_event(event)
        except BackendError as exc:
            self._backend_failure = str(exc)
            self.send_page(events.error_event("backend_unavailable", str(exc)))
            reason = "backend_error"
        except Exception:
            logger.exception("Session(%s) backend loop failed", self.id)
            reason = "internal_error"
        self.close_soon(reason)

    def _on_backend_event(self, event: Event) -> None:
        handler = self._handlers.get(event.get("type", ""))
        if handler is not None:
            handler(self, event)

    def _speech_started(self, event: Event) -> None:
        self._user_speaking = True
        self._utterance.start()
        self.interrupt()
        self._set_state(State.USER_SPEAKING)

    def _speech_stopped(self, event: Event) -> None:
        self._user_speaking = False
        audio = self._utterance.stop()
        if audio and (self._tone_task is None or self._tone_task.done()):
            self._tone_task = asyncio.create_task(
                self._send_tone(event.get("item_id"), audio), name=f"session-{self.id}-tone"
            )
        self.stats.turns += 1
        # `audio_end_ms` is where the VAD declared the end, after its silence hangover; the
        # person stopped speaking that much earlier, and latency counts from there.
        end_ms = event.get("audio_end_ms")
        arrived = None
        if self._uplink is not None and isinstance(end_ms, int | float):
            arrived = self._uplink.time_at(end_ms - self._client.dialect.silence_ms(self.backend))
        self._turn_end_t = arrived if arrived is not None else self._loop.time()
        self._set_state(State.LISTENING)

    async def _send_tone(self, item_id: str | None, audio: bytes) -> None:
        """Tone of voice of the user's turn, for any backend; the analysis runs in a thread."""
        features = await asyncio.to_thread(analyze_utterance, audio)
        if features.voiced_s > 0:
            self.send_page(events.tone_event(item_id, dataclasses.asdict(features)))

    def _response_created(self, event: Event) -> None:
        response = event.get("response") or {}
        self._active_response = response.get("id") or "unknown"
        self._active_item = None

    def _response_done(self, event: Event) -> None:
        response = event.get("response") or {}
        if response.get("id") in (self._active_response, None):
            self._active_response = None

    def _is_cancelled(self, event: Event) -> bool:
        return (
            event.get("response_id") in self._cancelled or event.get("item_id") in self._cancelled
        )

    def _audio_delta(self, event: Event) -> None:
        if self._is_cancelled(event):
            self.stats.late_deltas_dropped += 1
            return
        try:
            pcm = base64.b64decode(event.get("delta") or "", validate=True)
        except (binascii.Error, TypeError, ValueError):
            logger.warning("Session(%s) dropped an audio delta that is not base64", self.id)
            return
        item_id = event.get("item_id")
        if event.get("response_id") == self._active_response:
            self._active_item = item_id
        self.playout.push(item_id, pcm[: len(pcm) & ~1])

    def _assistant_text(self, event: Event) -> None:
        if self._is_cancelled(event):
            return
        self._update_text("assistant", event.get("item_id"), event.get("delta") or "", final=False)

    def _assistant_text_done(self, event: Event) -> None:
        if self._is_cancelled(event):
            return
        text = event.get("transcript") or event.get("text")
        self._update_text("assistant", event.get("item_id"), text, final=True)

    def _user_text(self, event: Event) -> None:
        delta = event.get("delta") or ""
        cumulative = self._client.dialect.cumulative_input_transcripts
        self._update_text("user", event.get("item_id"), delta, final=False, replace=cumulative)

    def _user_text_done(self, event: Event) -> None:
        self._update_text("user", event.get("item_id"), event.get("transcript"), final=True)

    def _update_text(
        self,
        role: events.Role,
        item_id: str | None,
        text: str | None,
        *,
        final: bool,
        replace: bool = False,
    ) -> None:
        key = f"{role}:{item_id}"
        if final or replace:
            whole = text if text is not None else self._texts.get(key, "")
        else:
            whole = self._texts.get(key, "") + (text or "")
        if final:
            self._texts.pop(key, None)
        else:
            self._texts[key] = whole
            while len(self._texts) > MAX_TRACKED_RESPONSES:
                del self._texts[next(iter(self._texts))]
        self.send_page(events.transcript_event(role, item_id, whole, final))

    def _backend_error(self, event: Event) -> None:
        message = error_message(event)
        if self._loop.time() - self._last_cancel_t < BENIGN_ERROR_WINDOW_S:
            logger.debug("Session(%s) ignored a backend error after cancel: %s", self.id, message)
            return
        logger.info("Session(%s) backend error: %s", self.id, message)
        self.send_page(events.error_event("backend_error", f"The model reported: {message}"))

    _handlers: dict[str, Callable[[Session, Event], None]] = {
        "input_audio_buffer.speech_started": _speech_started,
        "input_audio_buffer.speech_stopped": _speech_stopped,
        "response.created": _response_created,
        "response.done": _response_done,
        "response.audio.delta": _audio_delta,
        "response.audio_transcript.delta": _assistant_text,
        "response.text.delta": _assistant_text,
        "response.audio_transcript.done": _assistant_text_done,
        "response.text.done": _assistant_text_done,
        "conversation.item.input_audio_transcription.delta": _user_text,
        "conversation.item.input_audio_transcription.completed": _user_text_done,
        "error": _backend_error,
    }

    # -- barge-in and page events -------------------------------------------------------------

    def interrupt(self) -> None:
        """Barge-in: stop playout now, cancel the response, truncate what was not heard."""
        playing = self.playout.is_playing
        item = self.playout.flush()
        cancelled = self._active_response
        if cancelled is not None:
            self._client.send({"type": "response.cancel"})
            self._cancelled.append(cancelled)
            self._active_response = None
        if item is None or item.item_id is None:
            truncate = False
        else:
            truncate = playing or (cancelled is not None and item.item_id == self._active_item)
        if truncate and item is not None and item.item_id is not None:
            played_ms = min(item.sent_ms, item.received_ms)
            self._client.send(
                {
                    "type": "conversation.item.truncate",
                    "item_id": item.item_id,
                    "content_index": 0,
                    "audio_end_ms": played_ms,
                }
            )
            self._cancelled.append(item.item_id)
            self.send_page(events.interrupted_event(item.item_id, played_ms))
        if cancelled is not None or truncate:
            self.stats.interruptions += 1
            self._last_cancel_t = self._loop.time()

    def _on_item_started(self, item_id: str | None) -> None:
        self._set_state(State.ASSISTANT_SPEAKING)
        if self._turn_end_t is not None:
            latency_ms = (self._loop.time() - self._turn_end_t) * 1000
            self._turn_end_t = None
            self.stats.latencies_ms.append(latency_ms)
            self.send_page(events.latency_event(self.stats.turns, latency_ms))

    def _on_drained(self) -> None:
        if not self._user_speaking:
            self._set_state(State.LISTENING)

    def _on_page_message(self, message: str | bytes) -> None:
        try:
            event = parse_client_event(message)
        except PolicyViolation as exc:
            self.send_page(events.error_event("invalid_client_event", str(exc)))
            return
        if isinstance(event, Interrupt):
            self.interrupt()
        elif isinstance(event, TextMessage):
            self.interrupt()
            content = [{"type": "input_text", "text": event.text}]
            self._client.send(
                {
                    "type": "conversation.item.create",
                    "item": {"type": "message", "role": "user", "content": content},
                }
            )
            self._client.send({"type": "response.create"})
            self._turn_end_t = self._loop.time()
            self.send_page(events.transcript_event("user", None, event.text, True))

    def _set_state(self, state: State) -> None:
        if state is not self._state and self._closed is None:
            self._state = state
            self.send_page(events.state_event(state))

    def send_page(self, event: PageEvent) -> None:
        channel = self._channel
        if channel is not None and channel.readyState == "open":
            channel.send(json.dumps(event))
        else:
            self._pending_page.append(event)

    def _flush_page_events(self) -> None:
        channel = self._channel
        while channel is not None and channel.readyState == "open" and self._pending_page:
            channel.send(json.dumps(self._pending_page.popleft()))

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed is not None

    def close_soon(self, reason: str) -> None:
        """Close from a callback or from one of the session's own tasks."""
        if self._closed is None and self._close_task is None:
            self._close_task = asyncio.create_task(
                self.close(reason), name=f"session-{self.id}-close"
            )

    async def close(self, reason: str) -> None:
        """Free everything exactly once; later callers wait for the first close to finish."""
        if self._closed is not None:
            await asyncio.shield(self._closed)
            return
        self._closed = self._loop.create_future()
        self.reason = self.reason or reason
        try:
            self._state = State.ENDED
            if self.pc.connectionState == "connected":
                # Sending on a dead transport leaves aiortc tasks failing in the background.
                self.send_page(events.state_event(State.ENDED))
                self.send_page(events.ended_event(self.reason))
            if self._timer is not None:
                self._timer.cancel()
            self.playout.stop()
            current = asyncio.current_task()
            owned = (self._uplink_task, self._backend_task, self._tone_task)
            tasks = [t for t in owned if t and t is not current]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._client.close()
            await self.pc.close()
            self.pc.remove_all_listeners()
        finally:
            self._closed.set_result(None)
            if self._on_closed is not None:
                self._on_closed(self)
            self._log_summary()

    def _log_summary(self) -> None:
        latencies = self.stats.latencies_ms
        logger.info(
            "Session(%s) ended reason=%s backend=%s model=%s duration_s=%.1f turns=%d "
            "interruptions=%d latency_ms_median=%s",
            self.id,
            self.reason,
            self.backend.dialect,
            self.backend.model,
            self._loop.time() - self._started_at,
            self.stats.turns,
            self.stats.interruptions,
            f"{sorted(latencies)[len(latencies) // 2]:.0f}" if latencies else "-",
        )

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "backend": self.backend.dialect, "model": self.backend.model}
