// RelayClient: signalling, peer connection, data channel and events for one conversation.
// No DOM: pages and the widget wire it to their own elements.
//
// Events (CustomEvent, payload in `detail`): every server event by its `type` ("state",
// "transcript", "latency", "interrupted", "error", "ended", ...) and as "event"; "track"
// {track, stream}; "connectionstate" {state}; "reconnecting" {reason}; "reconnected"
// {sessionId}; "closed" {reason, error?} once the conversation is over for good.

const DEFAULT_GATHER_TIMEOUT_MS = 2000;
const HANGUP_TIMEOUT_MS = 2000;
// A peer connection "disconnected" this long is treated as dropped (ICE may recover before).
const DISCONNECT_GRACE_MS = 4000;
// A connection that stayed up this long earns its automatic reconnect back.
const STABLE_CONNECTION_MS = 30_000;
// Server end reasons that are a normal end of the conversation, not a dropped connection.
const FINAL_END_REASONS = new Set(["hangup", "max_duration"]);

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
  #dropping = false;
  #closed = true;

  constructor(options = {}) {
    super();
    this.sessionsUrl = options.sessionsUrl ?? "/api/sessions";
    this.iceServers = options.iceServers ?? [];
    this.gatherTimeoutMs = options.iceGatherTimeoutMs ?? DEFAULT_GATHER_TIMEOUT_MS;
    this.extraBody = options.extraBody ?? {};
    // Automatic reconnects after a dropped connection (0 keeps the original behaviour).
    this.reconnects = options.reconnects ?? 0;
    this.pc = null;
    this.channel = null;
    this.sessionId = null;
    this.localStream = null;
    this.remoteStream = null;
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

  // Hangs up: tells the server, stops every track (the microphone light goes off), resets state.
  close() {
    this.#closed = true;
    this.pc?.getSenders().forEach((sender) => sender.track?.stop());
    this.localStream?.getTracks().forEach((track) => track.stop());
    this.#teardown({ hangUp: true });
    this.localStream = null;
  }

  async #negotiate() {
    const pc = new RTCPeerConnection({ iceServers: this.iceServers });
    this.pc = pc;
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
    await waitForIceGathering(pc, this.gatherTimeoutMs);
    if (this.pc !== pc) throw abortedError();
    const body = await this.#postOffer(pc.localDescription.sdp);
    if (this.pc !== pc) {
      deleteSession(this.sessionsUrl, body.session_id);
      throw abortedError();
    }
    this.sessionId = body.session_id;
    await pc.setRemoteDescription({ type: body.type, sdp: body.sdp });
    return remoteStream;
  }

  async #postOffer(sdp) {
    let response;
    try {
      response = await fetch(this.sessionsUrl, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ ...this.extraBody, sdp, type: "offer" }),
      });
    } catch (error) {
      throw new RelayError("network", { detail: error.message });
    }
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      // The server always answers {"error": {code, message}}; a proxy's own page does not.
      const error = body.error ?? {};
      throw new RelayError(error.code ?? `http_${response.status}`, {
        detail: error.message ?? `${response.status} ${response.statusText}`.trim(),
        status: response.status,
        retryAfterS: parseRetryAfter(response.headers.get("Retry-After")),
      });
    }
    return body;
  }

  #onConnectionState(state) {
    this.#emit("connectionstate", { state });
    clearTimeout(this.#graceTimer);
    this.#graceTimer = null;
    if (state === "connected") {
      this.#connectedAt = performance.now();
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
    if (event.type === "ended") {
      this.sessionId = null; // the server has ended it already: no DELETE
      if (FINAL_END_REASONS.has(event.reason)) this.#finish(event.reason);
      else this.#dropped(event.reason ?? "ended");
    }
  }

  // The connection went away without anyone hanging up: reconnect once with the same microphone.
  async #dropped(reason) {
    if (this.#closed || this.#dropping) return;
    if (this.#connectedAt !== null && performance.now() - this.#connectedAt > STABLE_CONNECTION_MS) {
      this.#reconnectsLeft = this.reconnects;
    }
    if (this.#reconnectsLeft <= 0) {
      this.#finish(reason);
      return;
    }
    this.#reconnectsLeft -= 1;
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

  #finish(reason, error) {
    if (this.#closed) return;
    this.close();
    this.#emit("closed", { reason, error });
  }

  // Stops the peer connection; the microphone stays open unless close() stops it.
  #teardown({ hangUp }) {
    clearTimeout(this.#graceTimer);
    this.#graceTimer = null;
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

// Resolves (never rejects) once the server answered the hang-up or HANGUP_TIMEOUT_MS passed.
function deleteSession(sessionsUrl, sessionId) {
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

// Resolves when ICE gathering completes or after timeoutMs, whichever comes first.
export function waitForIceGathering(pc, timeoutMs) {
  return new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") return resolve();
    const cleanup = () => {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", onChange);
      resolve();
    };
    const onChange = () => {
      if (pc.iceGatheringState === "complete") cleanup();
    };
    const timer = setTimeout(cleanup, timeoutMs);
    pc.addEventListener("icegatheringstatechange", onChange);
    onChange();
  });
}
