"""Session: one conversation, one peer connection, one backend socket, their tasks and teardown.

It wires the parts and carries out what they decide: relay.turns decides what each server
event, page message and playout moment means; relay.page_channel talks to the page.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from aiortc import RTCPeerConnection, RTCSessionDescription

from protocol.prosody import analyze_utterance

from . import events
from .actions import (
    Action,
    AnalyzeUtterance,
    FlushPlayout,
    PlayAudio,
    SendToModel,
    SendToPage,
    ShowState,
    StartUtterance,
    Wake,
)
from .backends import BackendConfig, RealtimeClient, dialect_for
from .backends.client import BackendRejected
from .decoding import AudioReceiver, receive_audio
from .errors import BackendError, SignallingError
from .events import EndReason, ErrorCode, State
from .media import MediaOptions
from .page_channel import PageChannel
from .peer import IceServerConfig, PeerNetwork, add_opus_audio, create_peer_connection
from .playout import PlayoutTrack
from .policy import PageMessage, ToolResult
from .tools import RunTool, ToolAction, ToolCalls
from .turns import Turns, TurnStats
from .uplink import Uplink
from .utterance import UtteranceRecorder
from .webhook import ToolRunner, WebhookOptions

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SessionOptions:
    ice_servers: Sequence[IceServerConfig] = ()
    max_duration_s: float = 1800.0
    connect_timeout_s: float = 15.0  # a call whose peer has not connected by then ends
    host_addresses: tuple[str, ...] = ()  # host candidates only on these (all when empty)
    network: PeerNetwork = PeerNetwork()  # their UDP port range and public address
    media: MediaOptions = MediaOptions()
    webhooks: WebhookOptions = WebhookOptions()  # how server tools are called


class Session:
    """Relays one browser peer to one realtime backend until either side ends."""

    def __init__(
        self,
        session_id: str,
        backend: BackendConfig,
        options: SessionOptions,
        on_closed: Callable[[Session], None] | None = None,
        on_latency: Callable[[Session, float], None] | None = None,
    ) -> None:
        """`on_latency` hears each turn's latency (ms) as it is measured."""
        self.id = session_id
        self.backend = backend
        self.options = options
        self.reason: str | None = None
        self._on_closed = on_closed
        self._on_latency = on_latency
        self._loop = asyncio.get_running_loop()
        self._started_at = self._loop.time()
        label = f"Session({session_id})"
        self._client = RealtimeClient(backend, dialect_for(backend.dialect), label)
        self.playout = PlayoutTrack(
            on_item_started=self._on_item_started,
            on_drained=self._on_drained,
            options=options.media,
            label=label,
        )
        self.pc: RTCPeerConnection = create_peer_connection(
            options.ice_servers, options.host_addresses, options.network
        )
        self._page = PageChannel(self._on_page_message, label=label)
        self._turns = Turns(
            self.playout,
            cumulative_user_transcripts=self._client.dialect.cumulative_input_transcripts,
            speech_end=self._speech_end,
            redact=self._client.redact,
            label=label,
        )
        self._tools = ToolCalls(backend.tools, label=label)
        self._tool_runner = ToolRunner(options.webhooks, self._on_tool_result, session_id)
        self._utterance = UtteranceRecorder()
        self._uplink = Uplink(self._on_uplink_audio)
        self._receiver: AudioReceiver | None = None
        self._backend_task: asyncio.Task[None] | None = None
        self._tone_task: asyncio.Task[None] | None = None
        self._close_task: asyncio.Task[None] | None = None
        self._closed: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._connect_timer: asyncio.TimerHandle | None = None
        self._negotiating: asyncio.Future[None] | None = None
        self._state: State | None = None
        self._backend_failure: str | None = None
        self._backend_rejected = False  # the failure is the backend refusing our session
        self._end_when_page_opens: str | None = None  # the backend ended before the page came

    @property
    def stats(self) -> TurnStats:
        return self._turns.stats

    @property
    def backend_backlog(self) -> tuple[int, int]:
        """What waits to go to the backend: (events, audio bytes); both bounded."""
        return self._client.backlog

    # -- signalling -------------------------------------------------------------------------

    async def answer(self, offer: RTCSessionDescription) -> RTCSessionDescription:
        """Negotiate with the page's offer while the backend socket opens."""
        self.pc.on("datachannel", self._page.attach)
        self.pc.on("datachannel", self._on_page_channel)  # after attach: its events are out
        self.pc.on("connectionstatechange", self._on_connection_state)
        self._backend_task = asyncio.create_task(
            self._run_backend(), name=f"session-{self.id}-backend"
        )
        self._timer = self._loop.call_later(
            self.options.max_duration_s, self.close_soon, EndReason.MAX_DURATION
        )
        # A peer that never connects (gone, or stuck before DTLS) would hold its slot for good.
        self._connect_timer = self._loop.call_later(
            self.options.connect_timeout_s, self.close_soon, EndReason.CONNECT_TIMEOUT
        )
        self._set_state(State.CONNECTING)
        try:
            await self._negotiate(offer)
        except Exception as exc:  # aiortc raises many types for SDP it cannot use
            failure = self._backend_failure
            await self.close(EndReason.BAD_OFFER if failure is None else EndReason.BACKEND_ERROR)
            if failure is not None:
                raise BackendError(failure) from None
            raise SignallingError(f"the SDP offer could not be negotiated: {exc}") from None
        if self._backend_failure is not None:
            await self.close(EndReason.BACKEND_ERROR)
            kind = BackendRejected if self._backend_rejected else BackendError
            raise kind(self._backend_failure)
        description = self.pc.localDescription
        assert description is not None
        return description

    async def _negotiate(self, offer: RTCSessionDescription) -> None:
        """Answer `offer`; close() waits for this to end, since closing the peer connection
        while aiortc gathers leaves the sockets it opens afterwards behind."""
        self._negotiating = self._loop.create_future()
        try:
            audio = add_opus_audio(self.pc, self.playout)
            await self.pc.setRemoteDescription(offer)
            if audio.receiver.track is not None:  # the page sends audio (it may only listen)
                self._receiver = receive_audio(
                    audio.receiver, self._uplink.feed, self.options.media
                )
            await self.pc.setLocalDescription(await self.pc.createAnswer())
        finally:
            self._negotiating.set_result(None)

    def _on_uplink_audio(self, pcm: bytes) -> None:
        self._client.append_audio(pcm)
        self._utterance.feed(pcm)

    async def _on_connection_state(self) -> None:
        state = self.pc.connectionState
        if state == "connected" and self._connect_timer is not None:
            self._connect_timer.cancel()
        if state == "connected" and self._client.ready:
            self._set_state(State.LISTENING)
        elif state == "failed":
            self.close_soon(EndReason.ICE_FAILED)
        elif state == "closed":
            self.close_soon(EndReason.PEER_CLOSED)

    # -- backend, page and playout: carried out as relay.turns decides ----------------------

    async def _run_backend(self) -> None:
        reason = EndReason.BACKEND_CLOSED
        try:
            await self._client.connect()
            greeting = self._client.dialect.greeting_event(self.backend)
            if greeting is not None:
                self._client.send(greeting)
            if self.pc.connectionState == "connected":
                self._set_state(State.LISTENING)
            async for event in self._client.events():
                self._apply(self._turns.server_event(event, self._loop.time()))
                self._apply(self._tools.server_event(event))
        except BackendError as exc:
            self._backend_failure = self._client.redact(str(exc))
            self._backend_rejected = isinstance(exc, BackendRejected)
            code = ErrorCode.BACKEND_REJECTED_SESSION if self._backend_rejected else None
            self._page.send(
                events.error_event(code or ErrorCode.BACKEND_UNAVAILABLE, self._backend_failure)
            )
            reason = EndReason.BACKEND_ERROR
        except Exception:
            logger.exception("Session(%s) backend loop failed", self.id)
            reason = EndReason.INTERNAL_ERROR
        if self.pc.connectionState == "connected" or self.pc.sctp is None:
            self.close_soon(reason)
        else:
            # The page must hear why (its error is kept until its channel opens): wait for the
            # channel, as long as a connect may take.
            self._end_when_page_opens = reason
            self._loop.call_later(self.options.connect_timeout_s, self.close_soon, reason)

    def _on_page_channel(self, channel: object) -> None:
        if self._end_when_page_opens is not None:
            self.close_soon(self._end_when_page_opens)

    def _speech_end(self, audio_end_ms: float) -> float | None:
        # `audio_end_ms` is where the VAD declared the end, after its silence hangover; the
        # person stopped speaking that much earlier, and latency counts from there.
        return self._uplink.time_at(audio_end_ms - self._client.silence_ms)

    def _on_page_message(self, message: PageMessage) -> None:
        if isinstance(message, ToolResult):
            self._tool_runner.answered(message.call_id)
            self._apply(self._tools.page_result(message.call_id, message.output, message.error))
            return
        self._apply(self._turns.page_message(message, self._loop.time()))

    def _on_tool_result(self, call_id: str, output: str | None, error: str | None) -> None:
        if self._closed is None:
            self._apply(self._tools.result(call_id, output, error))

    def _on_wake(self) -> None:
        if self._closed is None:
            self._apply(self._turns.wake(self._loop.time()))

    def _on_item_started(self, item_id: str | None) -> None:
        measured = len(self.stats.latencies_ms)
        self._apply(self._turns.item_started(item_id, self._loop.time()))
        if self._on_latency is not None:
            for latency_ms in self.stats.latencies_ms[measured:]:
                self._on_latency(self, latency_ms)

    def _on_drained(self) -> None:
        self._apply(self._turns.drained())

    def _apply(self, actions: Sequence[Action | ToolAction]) -> None:
        for action in actions:
            match action:
                case SendToModel(event):
                    self._client.send(event)
                case SendToPage(event):
                    self._page.send(event)
                case ShowState(state):
                    self._set_state(state)
                case FlushPlayout():
                    self.playout.flush()
                case PlayAudio(item_id, pcm):
                    self.playout.push(item_id, pcm)
                case StartUtterance():
                    self._utterance.start()
                case AnalyzeUtterance(item_id):
                    self._analyze_tone(item_id)
                case Wake(delay_s):
                    self._loop.call_later(delay_s, self._on_wake)
                case RunTool(call):
                    self._tool_runner.start(call)

    def _analyze_tone(self, item_id: str | None) -> None:
        audio = self._utterance.stop()
        if audio and (self._tone_task is None or self._tone_task.done()):
            self._tone_task = asyncio.create_task(
                self._send_tone(item_id, audio), name=f"session-{self.id}-tone"
            )

    async def _send_tone(self, item_id: str | None, audio: bytes) -> None:
        """Tone of voice of the user's turn, for any backend; the analysis runs in a thread."""
        features = await asyncio.to_thread(analyze_utterance, audio)
        if features.voiced_s > 0:
            self._page.send(events.tone_event(item_id, dataclasses.asdict(features)))

    def _set_state(self, state: State) -> None:
        if state is not self._state and self._closed is None:
            self._state = state
            self._page.send(events.state_event(state))

    # -- lifecycle -------------------------------------------------------------------------

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
        self.reason = str(self.reason or reason)
        try:
            self._state = State.ENDED
            if self.pc.connectionState == "connected":
                # Sending on a dead transport leaves aiortc tasks failing in the background.
                self._page.send(events.state_event(State.ENDED))
                self._page.send(events.ended_event(self.reason))
            for timer in (self._timer, self._connect_timer):
                if timer is not None:
                    timer.cancel()
            self.playout.stop()
            current = asyncio.current_task()
            tasks = [t for t in (self._backend_task, self._tone_task) if t and t is not current]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._tool_runner.close()
            if self._negotiating is not None:  # it may still add the receiver
                await asyncio.shield(self._negotiating)
            if self._receiver is not None:
                await self._receiver.stop()
            await self._client.close()
            try:
                await self.pc.close()
            except Exception:  # the rest of the teardown still runs
                logger.exception("Session(%s) peer connection close failed", self.id)
            self.pc.remove_all_listeners()
        finally:
            self._closed.set_result(None)
            if self._on_closed is not None:
                self._on_closed(self)
            self._log_summary()

    def counters(self) -> dict[str, int]:
        """What the media path counted, for the summary line and the metrics."""
        counters = {
            "playout_late_frames": self.playout.late_frames,
            "playout_dropped_bytes": self.playout.dropped_bytes,
            "backend_sent_audio_bytes": self._client.sent_audio_bytes,
            "backend_dropped_audio_bytes": self._client.dropped_audio_bytes,
            "backend_dropped_events": self._client.dropped_events,
            "backend_ignored_events": self._client.ignored.total()
            + self.stats.ignored_events.total(),
            "backend_errors_not_shown": self.stats.errors_not_shown,
            "page_refused_messages": self._page.refused_messages,
            "tool_calls": self._tools.calls,
            "tool_failures": self._tools.failures,
        }
        if self._receiver is not None:
            counters.update({f"uplink_{k}": v for k, v in self._receiver.counters().items()})
        return counters

    def _log_summary(self) -> None:
        latencies = self.stats.latencies_ms
        counters = " ".join(f"{name}={value}" for name, value in self.counters().items())
        logger.info(
            "Session(%s) ended reason=%s backend=%s model=%s duration_s=%.1f turns=%d "
            "interruptions=%d latency_ms_median=%s %s",
            self.id,
            self.reason,
            self.backend.dialect,
            self.backend.model,
            self._loop.time() - self._started_at,
            self.stats.turns,
            self.stats.interruptions,
            f"{sorted(latencies)[len(latencies) // 2]:.0f}" if latencies else "-",
            counters,
        )
