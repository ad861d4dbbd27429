// RelayClient: signalling, peer connection, data channel and events for one conversation.
// No DOM: pages and the widget wire it to their own elements.
//
// Events (CustomEvent, payload in `detail`): every server event by its `type` ("state",
// "transcript", "latency", "interrupted", "error", "ended", ...) and as "event"; "track"
// {track, stream}; "connectionstate" {state}; "reconnecting" {reason}; "reconnected"
// {sessionId}; "closed" {reason, error?} once the conversation is over for good. A peer connection
// that never connects within ICE_CONNECT_TIMEOUT_MS (the network blocks it) is "closed" with the
// reason "network_blocked", without a reconnect: the same network would block that too.
//
// Client tools (client-tools.js): a server `tool_call` runs `onToolCall(call, signal)` (the
// option, or the property set later), whose value or throw is sent back as the `tool_result`;
// without a handler the model is told there is none. "toolresult" {call_id, output | error} says
// what was sent.
import { parseToolCall, runToolCall, TOOL_TIMEOUT_MS } from "./client-tools.js";
import { configuredRelays, fetchIceServers, gatherCandidates, selectedPair } from "./ice.js";

const DEFAULT_GATHER_TIMEOUT_MS = 2000;
// Chromium itself gives up on ICE after about 15 s; this bounds every browser the same way.
export const ICE_CONNECT_TIMEOUT_MS = 15_000;
const HANGUP_TIMEOUT_MS = 2000;
// A peer connection "disconnected" this long is treated as dropped (ICE may recover before).
const DISCONNECT_GRACE_MS = 4000;
// A connection that stayed up this long earns its automatic reconnect back.
const STABLE_CONNECTION_MS = 30_000;
// Server end reasons that are a normal end of the conversation, not a dropped connection.
const FINAL_END_REASONS = new Set(["hangup", "max_duration"]);
// The server drains for a deploy (relay/events.py EndReason): nothing is wrong with this
// connection, so the reconnect (to another instance) uses up none of the page's reconnects.
export const DRAIN_END_REASON = "server_draining";

// What the page does when its conversation ends or drops for `reason`: "finish", "reconnect"
// (using up one of `reconnectsLeft`) or "reconnect_free". `reconnects` 0 never reconnects.
export function endAction(reason, { reconnects, reconnectsLeft }) {
  if (FINAL_END_REASONS.has(reason) || reconnects <= 0) return "finish";
  if (reason === DRAIN_END_REASON) return "reconnect_free";
  return reconnectsLeft > 0 ? "reconnect" : "finish";
}

// getUserMedia's error names (DOMException) and our codes for them; others are `mic_error`.
const MIC_ERRORS = new Map([
  ["NotAllowedError", "mic_denied"],
  ["SecurityError", "mic_denied"],
  ["NotFoundError", "no_mic"],
  ["OverconstrainedError", "no_mic"],
  ["NotReadableError", "mic_busy"],
  ["AbortError", "mic_busy"],
]);

// A failure to start a conversation: a code (messages.js has its words) and the raw `detail`
// behind it (the server's message, the browser's error name), never words of our own.
export class RelayError extends Error {
  constructor(code, { detail = "", status = null, retryAfterS = null } = {}) {
    super(detail ? `${code}: ${detail}` : code);
    this.name = "RelayError";
    this.code = code;
    this.detail = detail;
    this.status = status;
    this.retryAfterS = retryAfterS;
  }
}

export class RelayClient extends EventTarget {
  #reconnectsLeft = 0;
  #connectedAt = null;
  #graceTimer = null;
  #iceTimer = null;
  // Identifies the negotiation in progress while it awaits the ICE servers (no peer yet).
  #pending = null;
  #dropping = false;
  #closed = true;

  constructor(options = {}) {
    super();
    this.sessionsUrl = options.sessionsUrl ?? "/api/sessions";
    // ICE servers come from iceServersUrl before every call; `iceServers` only if it fails.
    this.iceServersUrl = options.iceServersUrl ?? "/api/ice-servers";
    this.iceServers = options.iceServers ?? [];
    this.gatherTimeoutMs = options.iceGatherTimeoutMs ?? DEFAULT_GATHER_TIMEOUT_MS;
    this.extraBody = options.extraBody ?? {};
    // Automatic reconnects after a dropped connection (0 keeps the original behaviour).
    this.reconnects = options.reconnects ?? 0;
    this.onToolCall = options.onToolCall ?? null;
    this.toolTimeoutMs = options.toolTimeoutMs ?? TOOL_TIMEOUT_MS;
    this.pc = null;
    this.channel = null;
    this.sessionId = null;
    this.localStream = null;
    this.remoteStream = null;
    // performance.now() of the current peer connection's start, offer, answer and connection.
    this.timeline = {};
  }

  // Opens the microphone (when no stream is given), negotiates, and resolves once answered.
  // The client owns the stream from here on: close() stops its tracks.
  async connect(stream) {
    if (!window.RTCPeerConnection) {
      throw new RelayError("no_webrtc");
    }
    this.#closed = false;
    this.#reconnectsLeft = this.reconnects;
    this.#connectedAt = null;
    try {
      const opened = stream ?? (await openMicrophone());
      if (this.#closed) {
        if (!stream) opened.getTracks().forEach((track) => track.stop());
        throw abortedError();
      }
      this.localStream = opened;
      return await this.#negotiate();
    } catch (error) {
      if (error.code !== "aborted") this.close();
      throw error;
    }
  }

  send(event) {
    if (this.channel?.readyState !== "open") return false;
    this.channel.send(JSON.stringify(event));
    return true;
  }

  sendText(text) {
    return this.send({ type: "text", text });
  }

  interrupt() {
    return this.send({ type: "interrupt" });
  }

  // The candidate pair the call runs on (ice.js selectedPair), or null before it has one.
  connectionInfo() {
    return selectedPair(this.pc);
  }

  // Hangs up: tells the server, stops every track (the microphone light goes off), resets state.
  close() {
    this.#closed = true;
    this.pc?.getSenders().forEach((sender) => sender.track?.stop());
    this.localStream?.getTracks().forEach((track) => track.stop());
    this.#teardown({ hangUp: true });
    this.localStream = null;
  }

  async #negotiate() {
    const marker = {};
    this.#pending = marker;
    const iceServers = await fetchIceServers(this.iceServersUrl, this.extraBody, this.iceServers);
    if (this.#closed || this.#pending !== marker) throw abortedError();
    const pc = new RTCPeerConnection({ iceServers });
    this.pc = pc;
    this.timeline = { start: performance.now() };
    const remoteStream = new MediaStream();
    this.remoteStream = remoteStream;
    pc.addEventListener("track", (event) => {
      if (this.pc !== pc) return;
      remoteStream.addTrack(event.track);
      this.#emit("track", { track: event.track, stream: remoteStream });
    });
    pc.addEventListener("connectionstatechange", () => {
      if (this.pc === pc) this.#onConnectionState(pc.connectionState);
    });
    for (const track of this.localStream.getAudioTracks()) pc.addTrack(track, this.localStream);
    const channel = pc.createDataChannel("events");
    this.channel = channel;
    channel.addEventListener("message", (event) => {
      if (this.pc === pc) this.#onMessage(event.data);
    });
    // The server's peer went away without an `ended` event: its SCTP association closed.
    channel.addEventListener("close", () => {
      if (this.pc === pc) this.#dropped("channel_closed");
    });
    await pc.setLocalDescription(await pc.createOffer());
    const relays = configuredRelays(iceServers).size > 0;
    await gatherCandidates(pc, { timeoutMs: this.gatherTimeoutMs, relays });
    if (this.pc !== pc) throw abortedError();
    this.timeline.offer = performance.now();
    const offer = { ...this.extraBody, sdp: pc.localDescription.sdp, type: "offer" };
    const body = await postOffer(this.sessionsUrl, offer);
    if (this.pc !== pc) {
      deleteSession(this.sessionsUrl, body.session_id);
      throw abortedError();
    }
    this.sessionId = body.session_id;
    await pc.setRemoteDescription({ type: body.type, sdp: body.sdp });
    this.timeline.answer = performance.now();
    if (this.pc === pc && pc.connectionState !== "connected") {
      this.#iceTimer = setTimeout(() => this.#blocked(pc), ICE_CONNECT_TIMEOUT_MS);
    }
    return remoteStream;
  }

  #onConnectionState(state) {
    this.#emit("connectionstate", { state });
    clearTimeout(this.#graceTimer);
    this.#graceTimer = null;
    if (state === "connected") {
      this.#connectedAt = performance.now();
      this.timeline.connected ??= this.#connectedAt;
      clearTimeout(this.#iceTimer);
    } else if (state === "failed" && this.timeline.connected === undefined) {
      this.#blocked(this.pc);
    } else if (state === "failed") {
      this.#dropped("ice_failed");
    } else if (state === "disconnected") {
      this.#graceTimer = setTimeout(() => this.#dropped("disconnected"), DISCONNECT_GRACE_MS);
    }
  }

  #onMessage(data) {
    let event;
    try {
      event = JSON.parse(data);
    } catch {
      return;
    }
    this.#emit("event", event);
    if (event.type) this.#emit(event.type, event);
    if (event.type === "tool_call") this.#answerToolCall(event);
    if (event.type === "ended") {
      this.sessionId = null; // the server has ended it already: no DELETE
      if (FINAL_END_REASONS.has(event.reason)) this.#finish(event.reason);
      else this.#dropped(event.reason ?? "ended");
    }
  }

  async #answerToolCall(event) {
    const call = parseToolCall(event);
    if (!call) return;
    const pc = this.pc;
    const result = await runToolCall(call, this.onToolCall, this.toolTimeoutMs);
    // A call belongs to its relay session: after a reconnect nobody is waiting for it.
    if (this.pc !== pc) return;
    this.send(result);
    this.#emit("toolresult", result);
  }

  // The connection went away without anyone hanging up: reconnect once with the same microphone.
  async #dropped(reason) {
    if (this.#closed || this.#dropping) return;
    if (this.#connectedAt !== null && performance.now() - this.#connectedAt > STABLE_CONNECTION_MS) {
      this.#reconnectsLeft = this.reconnects;
    }
    const action = endAction(reason, { reconnects: this.reconnects, reconnectsLeft: this.#reconnectsLeft });
    if (action === "finish") {
      this.#finish(reason);
      return;
    }
    if (action === "reconnect") this.#reconnectsLeft -= 1;
    this.#dropping = true;
    this.#emit("reconnecting", { reason });
    this.#teardown({ hangUp: true });
    try {
      await this.#negotiate();
      this.#dropping = false;
      this.#emit("reconnected", { sessionId: this.sessionId });
    } catch (error) {
      this.#dropping = false;
      if (error.code !== "aborted") this.#finish(reason, error);
    }
  }

  // ICE never connected this peer connection: UDP and every configured relay are blocked.
  #blocked(pc) {
    if (this.pc !== pc || this.timeline.connected !== undefined) return;
    this.#finish("network_blocked");
  }

  #finish(reason, error) {
    if (this.#closed) return;
    this.close();
    this.#emit("closed", { reason, error });
  }

  // Stops the peer connection; the microphone stays open unless close() stops it.
  #teardown({ hangUp }) {
    clearTimeout(this.#graceTimer);
    clearTimeout(this.#iceTimer);
    this.#graceTimer = null;
    this.#iceTimer = null;
    this.#pending = null;
    const hangingUp = hangUp && this.sessionId ? deleteSession(this.sessionsUrl, this.sessionId) : null;
    const pc = this.pc;
    this.pc = null;
    this.channel = null;
    this.sessionId = null;
    this.#connectedAt = null;
    if (!pc) return;
    pc.getTransceivers().forEach((transceiver) => transceiver.stop?.());
    // Closing the peer only once the DELETE is answered lets the server log a hang-up
    // rather than a vanished peer (and spares the page a 404 for the race).
    if (hangingUp) hangingUp.finally(() => pc.close());
    else pc.close();
  }

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

// POSTs an offer (with extra fields such as a demo link's) and returns the server's answer; a
// refusal is a RelayError with the server's code.
export async function postOffer(sessionsUrl, body) {
  let response;
  try {
    response = await fetch(sessionsUrl, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
  } catch (error) {
    throw new RelayError("network", { detail: error.message });
  }
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) {
    // The server always answers {"error": {code, message}}; a proxy's own page does not.
    const error = answer.error ?? {};
    throw new RelayError(error.code ?? `http_${response.status}`, {
      detail: error.message ?? `${response.status} ${response.statusText}`.trim(),
      status: response.status,
      retryAfterS: parseRetryAfter(response.headers.get("Retry-After")),
    });
  }
  return answer;
}

// Resolves (never rejects) once the server answered the hang-up or HANGUP_TIMEOUT_MS passed.
export function deleteSession(sessionsUrl, sessionId) {
  const signal = AbortSignal.timeout?.(HANGUP_TIMEOUT_MS);
  return fetch(`${sessionsUrl}/${encodeURIComponent(sessionId)}`, { method: "DELETE", keepalive: true, signal })
    .then(() => {})
    .catch(() => {});
}

function abortedError() {
  return new RelayError("aborted");
}

// Retry-After is either delta-seconds or an HTTP date (RFC 9110 §10.2.3).
export function parseRetryAfter(value) {
  if (!value) return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, Math.ceil(seconds));
  const date = Date.parse(value);
  return Number.isNaN(date) ? null : Math.max(0, Math.ceil((date - Date.now()) / 1000));
}

export async function openMicrophone() {
  if (!navigator.mediaDevices?.getUserMedia) {
    throw new RelayError(window.isSecureContext ? "no_webrtc" : "insecure_context");
  }
  try {
    return await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
  } catch (error) {
    throw new RelayError(MIC_ERRORS.get(error.name) ?? "mic_error", { detail: error.name });
  }
}
