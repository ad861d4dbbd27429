// RelayClient: signalling, peer connection, data channel and events for one conversation.
// No DOM: pages and the widget wire it to their own elements.

const DEFAULT_GATHER_TIMEOUT_MS = 2000;

export class RelayError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

export class RelayClient extends EventTarget {
  constructor(options = {}) {
    super();
    this.sessionsUrl = options.sessionsUrl ?? "/api/sessions";
    this.iceServers = options.iceServers ?? [];
    this.gatherTimeoutMs = options.iceGatherTimeoutMs ?? DEFAULT_GATHER_TIMEOUT_MS;
    this.extraBody = options.extraBody ?? {};
    this.pc = null;
    this.channel = null;
    this.sessionId = null;
    this.localStream = null;
    this.remoteStream = null;
  }

  // Opens the microphone (when no stream is given), negotiates, and resolves once answered.
  async connect(stream) {
    if (!window.RTCPeerConnection) {
      throw new RelayError("no_webrtc", "This browser does not support WebRTC.");
    }
    this.localStream = stream ?? (await openMicrophone());
    const pc = new RTCPeerConnection({ iceServers: this.iceServers });
    this.pc = pc;
    this.remoteStream = new MediaStream();
    pc.addEventListener("track", (event) => {
      this.remoteStream.addTrack(event.track);
      this.#emit("track", { track: event.track, stream: this.remoteStream });
    });
    pc.addEventListener("connectionstatechange", () => {
      this.#emit("connectionstate", { state: pc.connectionState });
    });
    for (const track of this.localStream.getAudioTracks()) pc.addTrack(track, this.localStream);
    this.channel = pc.createDataChannel("events");
    this.channel.addEventListener("message", (event) => this.#onMessage(event.data));
    await pc.setLocalDescription(await pc.createOffer());
    await waitForIceGathering(pc, this.gatherTimeoutMs);
    const response = await fetch(this.sessionsUrl, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ ...this.extraBody, sdp: pc.localDescription.sdp, type: "offer" }),
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      const error = body.error ?? {};
      this.close();
      throw new RelayError(error.code ?? `http_${response.status}`, error.message ?? response.statusText);
    }
    this.sessionId = body.session_id;
    await pc.setRemoteDescription({ type: body.type, sdp: body.sdp });
    return this.remoteStream;
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
    const sessionId = this.sessionId;
    if (sessionId) {
      fetch(`${this.sessionsUrl}/${encodeURIComponent(sessionId)}`, { method: "DELETE", keepalive: true })
        .catch(() => {});
    }
    this.pc?.getTransceivers().forEach((transceiver) => transceiver.stop?.());
    this.pc?.getSenders().forEach((sender) => sender.track?.stop());
    this.localStream?.getTracks().forEach((track) => track.stop());
    this.pc?.close();
    this.pc = null;
    this.channel = null;
    this.sessionId = null;
    this.localStream = null;
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
  }

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

export async function openMicrophone() {
  if (!navigator.mediaDevices?.getUserMedia) {
    const insecure = !window.isSecureContext;
    throw new RelayError(
      insecure ? "insecure_context" : "no_webrtc",
      insecure
        ? "The microphone needs a secure page: open this site over HTTPS (or on localhost)."
        : "This browser cannot use a microphone.",
    );
  }
  try {
    return await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
  } catch (error) {
    if (error.name === "NotAllowedError" || error.name === "SecurityError") {
      throw new RelayError("mic_denied", "Microphone access was denied. Allow it in the browser and try again.");
    }
    if (error.name === "NotFoundError" || error.name === "OverconstrainedError") {
      throw new RelayError("no_mic", "No microphone was found. Connect one and try again.");
    }
    throw new RelayError("mic_error", `The microphone could not be opened (${error.name}).`);
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
