// The talk page: one button, the assistant's voice, the transcript and the state.
import { RelayClient } from "./rtc-client.js";

const config = JSON.parse(document.getElementById("relay-config").textContent);
const button = document.getElementById("talk");
const statusLine = document.getElementById("status");
const transcript = document.getElementById("transcript");
const player = document.getElementById("player");
let client = null;

function show(text) {
  statusLine.textContent = text;
}

function showTranscript(event) {
  const key = `${event.role}:${event.item_id ?? Math.random()}`;
  let line = transcript.querySelector(`[data-key="${CSS.escape(key)}"]`);
  if (!line) {
    line = document.createElement("p");
    line.dataset.key = key;
    line.className = event.role;
    transcript.append(line);
  }
  line.textContent = `${event.role === "user" ? "You" : "Assistant"}: ${event.text}`;
}

async function start() {
  button.disabled = true;
  show("connecting");
  client = new RelayClient(config);
  client.addEventListener("state", (e) => show(e.detail.state.replace("_", " ")));
  client.addEventListener("transcript", (e) => showTranscript(e.detail));
  client.addEventListener("error", (e) => show(e.detail.message));
  client.addEventListener("track", (e) => {
    player.srcObject = e.detail.stream;
    player.play().catch(() => {});
  });
  try {
    await client.connect();
    button.textContent = "End";
  } catch (error) {
    show(error.message);
    client = null;
    button.textContent = "Talk";
  } finally {
    button.disabled = false;
  }
}

function stop() {
  client?.close();
  client = null;
  player.srcObject = null;
  button.textContent = "Talk";
  show("ended");
}

button.addEventListener("click", () => (client ? stop() : start()));
window.addEventListener("pagehide", () => client?.close());
