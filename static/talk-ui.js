// The talk UI: mounts the conversation controls into a root element and drives a RelayClient.
// The talk page mounts the full variant; widget and demo pages can mount { compact: true }.
// Emits "statechange" {state, previous}; states: idle, starting, connecting, connecting_model,
// listening, user_speaking, assistant_speaking, reconnecting, ended.
// `onToolCall(call, signal)` (option or property) runs the link's client tools (client-tools.js);
// without it each call is answered with "no handler". Tool activity shows in the conversation.
import { ConversationLog } from "./conversation.js";
import { h, ICONS, icon } from "./dom.js";
import { Translator } from "./i18n.js";
import { audioContext, LevelMeter } from "./levels.js";
import { endedMessage, errorMessage } from "./messages.js";
import { NetworkPanel } from "./network-panel.js";
import { DRAIN_END_REASON, openMicrophone, RelayClient } from "./rtc-client.js";
import { buildTalkView } from "./talk-view.js";
import { toneCues } from "./tone.js";

const LIVE_STATES = new Set(["listening", "user_speaking", "assistant_speaking"]);
const EARLY_STATES = new Set(["starting", "connecting", "connecting_model"]);
const CALL_STATES = new Set([...EARLY_STATES, "reconnecting", ...LIVE_STATES]);
const RECONNECTS = 1;
// A double click on Start should not start and at once cancel the call.
const DOUBLE_CLICK_MS = 400;

export function mountTalkUI(root, options = {}) {
  return new TalkUI(root, options);
}

export class TalkUI extends EventTarget {
  #lifetime = new AbortController();
  #clientScope = null;
  #call = null;
  #alertAction = null;
  #lastTone = null;
  #lastToggle = -Infinity;
  #onToolCall = null;

  constructor(root, { config = {}, translator = new Translator(), compact = false, onToolCall = null } = {}) {
    super();
    this.config = config;
    this.#onToolCall = onToolCall;
    this.i18n = translator;
    this.state = "idle";
    this.client = null;
    this.stream = null;
    this.muted = false;
    this.view = buildTalkView(translator, {
      compact,
      actions: {
        toggle: () => this.toggle(),
        mute: () => this.toggleMute(),
        interrupt: () => this.interrupt(),
        dismiss: () => this.#clearAlert(),
        alertAction: () => this.#alertAction?.(),
        download: (format) => this.log.download(format),
        submit: (text) => this.sendText(text),
        check: () => this.checkConnection(),
      },
    });
    this.network = new NetworkPanel(this.view, translator);
    this.log = new ConversationLog(this.view.log, translator, { onChange: () => this.#onLogChange() });
    this.inputMeter = new LevelMeter(this.view.meterIn);
    this.outputMeter = new LevelMeter(this.view.meterOut);
    const signal = this.#lifetime.signal;
    translator.addEventListener("change", () => this.#relabel(), { signal });
    window.addEventListener("pagehide", () => this.stop(), { signal });
    this.#setState("idle");
    this.#setMuted(false);
    this.#onLogChange();
    root.append(this.view.el);
    this.#checkSupport();
  }

  get onToolCall() {
    return this.#onToolCall;
  }

  // Applies to the conversation in progress too.
  set onToolCall(handler) {
    this.#onToolCall = handler;
    if (this.client) this.client.onToolCall = handler;
  }

  get inCall() {
    return CALL_STATES.has(this.state);
  }

  toggle() {
    const now = performance.now();
    if (now - this.#lastToggle < DOUBLE_CLICK_MS) return;
    this.#lastToggle = now;
    if (this.inCall) this.stop();
    else this.start();
  }

  // Opens the microphone and connects; every failure ends in a message and the idle state.
  async start() {
    if (this.inCall) return;
    this.#clearAlert();
    audioContext(); // made or resumed inside the click: browsers keep it suspended otherwise
    this.#primePlayback();
    const call = {};
    this.#call = call;
    this.#setMuted(false);
    this.#setState("starting");
    let stream;
    try {
      stream = await openMicrophone();
    } catch (error) {
      if (this.#call === call) this.#fail(error);
      return;
    }
    if (this.#call !== call) {
      stream.getTracks().forEach((track) => track.stop());
      return;
    }
    this.stream = stream;
    this.inputMeter.attach(stream);
    const client = new RelayClient({ ...this.config, reconnects: RECONNECTS, onToolCall: this.#onToolCall });
    this.client = client;
    this.#listen(client);
    this.network.track(client);
    this.#setState("connecting");
    try {
      await client.connect(stream);
    } catch (error) {
      if (this.#call === call && error.code !== "aborted") this.#fail(error);
    }
  }

  // Hangs up and releases the microphone (every track stopped).
  stop() {
    if (!this.inCall) return;
    this.#release();
    this.#setState("ended");
  }

  interrupt() {
    this.client?.interrupt();
  }

  sendText(text) {
    const message = text.trim();
    if (!message) return false;
    if (!this.client?.sendText(message)) {
      this.#showAlert(errorMessage({ code: "not_connected" }));
      return false;
    }
    this.log.typed(message);
    return true;
  }

  // The probe call of "check my connection" (connection-check.js); not during a call.
  checkConnection() {
    if (this.inCall) return Promise.resolve(null);
    return this.network.check(this.config);
  }

  // The candidate pair of the live call as the connection details show it, or null.
  connectionInfo() {
    return this.client?.connectionInfo() ?? Promise.resolve(null);
  }

  toggleMute() {
    this.#setMuted(!this.muted);
  }

  // Levels 0..1 of the microphone and of the assistant's voice, and their peaks since attached.
  levels() {
    const { inputMeter: input, outputMeter: output } = this;
    return { input: input.level, output: output.level, inputPeak: input.peak, outputPeak: output.peak };
  }

  // The microphone tracks of the current (or last) conversation and whether they still run.
  microphoneTracks() {
    return (this.stream?.getTracks() ?? []).map((track) => ({
      kind: track.kind,
      readyState: track.readyState,
      enabled: track.enabled,
    }));
  }

  destroy() {
    this.stop();
    this.#lifetime.abort();
    this.view.el.remove();
  }

  // -- calls ---------------------------------------------------------------------------------

  #listen(client) {
    this.#clientScope?.abort();
    this.#clientScope = new AbortController();
    const signal = this.#clientScope.signal;
    const on = (type, handler) => client.addEventListener(type, (event) => handler(event.detail), { signal });
    on("state", ({ state }) => {
      // The server says `connecting` over the data channel, so the call is up and it waits for
      // the model to start its session; "closed" below decides how it ended.
      if (state === "connecting") this.#setState("connecting_model");
      else if (state !== "ended") this.#setState(state);
    });
    on("transcript", (event) => this.log.transcript(event));
    on("latency", ({ ms }) => this.#showLatency(ms));
    on("interrupted", ({ item_id: itemId }) => this.log.interrupted(itemId));
    on("tone", (event) => this.#showTone(event));
    on("tool", (event) => this.log.tool(event));
    on("tool_call", (event) => this.log.tool({ ...event, kind: "client" }));
    on("toolresult", (result) => this.log.tool(result));
    on("error", (event) => this.#showAlert(errorMessage(event)));
    on("track", ({ stream }) => this.#play(stream));
    on("reconnecting", ({ reason }) => {
      if (reason === DRAIN_END_REASON) this.log.note("conv.server_moved");
      this.outputMeter.detach();
      this.#setState("reconnecting");
    });
    on("reconnected", () => {
      this.log.note("conv.reconnected");
      this.#setState("connecting");
    });
    on("closed", ({ reason }) => {
      this.#release();
      this.#setState("ended");
      const message = endedMessage(reason);
      if (message) this.#showAlert(message);
    });
  }

  #fail(error) {
    this.#release();
    this.#setState("idle");
    this.#showAlert(errorMessage(error));
  }

  #release() {
    this.#call = null;
    this.#clientScope?.abort();
    this.#clientScope = null;
    const client = this.client;
    this.client = null;
    client?.close();
    this.network.stop();
    // The stream is kept (stopped) so microphoneTracks() can show it was released.
    this.stream?.getTracks().forEach((track) => track.stop());
    this.inputMeter.detach();
    this.outputMeter.detach();
    this.view.player.pause();
    this.view.player.srcObject = null;
  }

  // iOS Safari lets a media element play later only if play() was first called in a gesture.
  #primePlayback() {
    if (!window.MediaStream) return;
    this.view.player.srcObject = new MediaStream();
    this.view.player.play().catch(() => {});
  }

  #play(stream) {
    const player = this.view.player;
    player.srcObject = stream;
    this.outputMeter.attach(stream);
    player.play().catch((error) => {
      if (error.name !== "NotAllowedError") return;
      this.#showAlert(errorMessage({ code: "autoplay" }), ["alert.play", () => player.play().catch(() => {})]);
    });
  }

  #setMuted(muted) {
    const { muteButton, muteLabel, el } = this.view;
    this.muted = muted;
    this.stream?.getAudioTracks().forEach((track) => {
      track.enabled = !muted;
    });
    muteButton.setAttribute("aria-pressed", String(muted));
    muteButton.replaceChildren(icon(muted ? ICONS.micOff : ICONS.mic), muteLabel);
    this.i18n.text(muteLabel, muted ? "control.unmute" : "control.mute");
    el.classList.toggle("talk--muted", muted);
    this.#renderStatus();
  }

  // -- view ----------------------------------------------------------------------------------

  #setState(state) {
    const previous = this.state;
    const v = this.view;
    this.state = state;
    if (state === "user_speaking" && previous !== state) this.log.speechStarted();
    else if (previous === "user_speaking" && state !== previous) this.log.speechStopped();
    v.el.dataset.state = state;
    const inCall = this.inCall;
    const live = LIVE_STATES.has(state);
    const early = EARLY_STATES.has(state);
    this.i18n.text(v.callLabel, inCall ? (early ? "call.cancel" : "call.end") : "call.start");
    v.callButton.classList.toggle("call--end", inCall);
    v.callButton.replaceChildren(icon(inCall ? ICONS.stop : ICONS.mic), v.callLabel);
    v.muteButton.disabled = !inCall;
    v.interruptButton.disabled = !live;
    v.input.disabled = !live;
    v.sendButton.disabled = !live;
    this.i18n.attr(v.input, "placeholder", live ? "composer.placeholder" : "composer.offline");
    this.#renderStatus();
    if (previous !== state) this.dispatchEvent(new CustomEvent("statechange", { detail: { state, previous } }));
  }

  #renderStatus() {
    this.i18n.text(this.view.statusText, `state.${this.state}`);
    if (this.muted && this.inCall) this.i18n.text(this.view.statusExtra, "state.muted");
    else this.view.statusExtra.textContent = "";
  }

  #showLatency(ms) {
    this.log.latency(ms);
    const line = this.view.latencyLine;
    if (line) this.i18n.text(line, "latency.last", { ms: Math.round(ms) });
  }

  #showTone(event) {
    this.log.tone(event);
    this.#lastTone = event;
    this.#renderTone();
  }

  #renderTone() {
    const { tonePanel, toneList } = this.view;
    if (!tonePanel || !this.#lastTone) return;
    const cues = toneCues(this.#lastTone, (key, params) => this.i18n.t(key, params));
    toneList.replaceChildren(
      ...cues.map((cue) => h("div", { class: "cue" }, h("dt", {}, cue.label), h("dd", {}, cue.value))),
    );
    tonePanel.hidden = cues.length === 0;
  }

  // Shows a message of messages.js (words, and the raw detail as it came) in the alert, with an
  // optional [labelKey, handler] action button.
  #showAlert({ code, key, params, detail }, action) {
    const { alert, alertText, alertDetail, alertAction } = this.view;
    this.i18n.text(alertText, key, params);
    alertDetail.textContent = detail ?? "";
    alertDetail.hidden = !detail;
    alert.dataset.code = code;
    this.#alertAction = action?.[1] ?? null;
    alertAction.hidden = !action;
    if (action) this.i18n.text(alertAction, action[0]);
    alert.hidden = false;
  }

  #clearAlert() {
    const { alert, alertText, alertDetail } = this.view;
    alert.hidden = true;
    alertText.textContent = "";
    alertDetail.textContent = "";
    delete alert.dataset.code;
    this.#alertAction = null;
  }

  #onLogChange() {
    const empty = this.log.entries.length === 0;
    this.view.emptyNote.hidden = !empty;
    for (const button of this.view.downloadButtons) button.disabled = empty;
  }

  #relabel() {
    this.i18n.apply(this.view.el);
    this.log.refresh();
    this.#renderTone();
    this.network.relabel();
  }

  // Says up front when this browser or page cannot make a call at all.
  #checkSupport() {
    let code = null;
    if (!window.RTCPeerConnection) code = "no_webrtc";
    else if (!navigator.mediaDevices?.getUserMedia) code = window.isSecureContext ? "no_webrtc" : "insecure_context";
    if (!code) return;
    this.view.callButton.disabled = true;
    this.#showAlert(errorMessage({ code }));
  }
}
