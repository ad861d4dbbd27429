// Audio level meters: a Web Audio analyser on a MediaStream drives a CSS variable (--level, 0..1).

const FLOOR_DB = -60;
const DECAY = 0.85; // per animation frame, so a meter falls smoothly instead of flickering

// One AudioContext per page, made (or resumed) inside a user gesture: Safari and Chromium keep
// a context made outside one suspended.
let sharedContext = null;

export function audioContext() {
  const Context = window.AudioContext ?? window.webkitAudioContext;
  if (!Context) return null;
  if (!sharedContext || sharedContext.state === "closed") sharedContext = new Context();
  if (sharedContext.state === "suspended") sharedContext.resume().catch(() => {});
  return sharedContext;
}

export class LevelMeter {
  constructor(element) {
    this.element = element;
    this.level = 0;
    this.peak = 0;
    this.source = null;
    this.analyser = null;
    this.sink = null;
    this.frame = null;
  }

  // Measures `stream` from now on (replacing the previous one). Chromium only decodes remote
  // WebRTC audio while a media element plays it, so attach the remote stream to one as well.
  attach(stream) {
    this.detach();
    const context = audioContext();
    if (!context || !stream?.getAudioTracks().length) return;
    this.source = context.createMediaStreamSource(stream);
    this.analyser = context.createAnalyser();
    this.analyser.fftSize = 1024;
    // A silent path to the destination keeps the analyser pulled in every browser.
    this.sink = context.createGain();
    this.sink.gain.value = 0;
    this.source.connect(this.analyser);
    this.analyser.connect(this.sink);
    this.sink.connect(context.destination);
    const samples = new Float32Array(this.analyser.fftSize);
    const tick = () => {
      this.analyser.getFloatTimeDomainData(samples);
      this.#show(Math.max(levelOf(samples), this.level * DECAY));
      this.frame = requestAnimationFrame(tick);
    };
    this.frame = requestAnimationFrame(tick);
  }

  detach() {
    cancelAnimationFrame(this.frame);
    this.frame = null;
    this.source?.disconnect();
    this.analyser?.disconnect();
    this.sink?.disconnect();
    this.source = this.analyser = this.sink = null;
    this.#show(0);
  }

  #show(level) {
    this.level = level < 0.01 ? 0 : level;
    this.peak = Math.max(this.peak, this.level);
    this.element.style.setProperty("--level", this.level.toFixed(3));
  }
}

// RMS of the samples on a dB scale: FLOOR_DB..0 dBFS maps to 0..1.
function levelOf(samples) {
  let sum = 0;
  for (const sample of samples) sum += sample * sample;
  const rms = Math.sqrt(sum / samples.length);
  if (rms <= 0) return 0;
  const db = 20 * Math.log10(rms);
  return Math.min(1, Math.max(0, (db - FLOOR_DB) / -FLOOR_DB));
}
