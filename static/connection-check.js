// "Check my connection": a short probe call to the server, without the microphone, that tells
// which paths work from this network (direct UDP, TURN over UDP, TCP or TLS) and the round trip.
import {
  configuredRelays,
  fetchIceServers,
  gatherCandidates,
  pathOf,
  pathReport,
  PATHS,
  selectedPair,
} from "./ice.js";
import { deleteSession, ICE_CONNECT_TIMEOUT_MS, postOffer } from "./rtc-client.js";

// Gathering is let run to the end here (every relay transport is of interest), up to this long.
const GATHER_ALL_MS = 6000;
// After connecting, checks of the other pairs go on for a moment (their results count too),
// and the selected pair's round trip may take a little longer to be measured.
const SETTLE_MS = 1500;
const RTT_WAIT_MS = 4000;

// Resolves (never rejects) to {paths: {PATH: status}, selected, rttMs, code, detail}. A status is
// "selected", "works", "reachable", "blocked", "untested" or "off" (no such TURN server); `code`
// says why the probe could not connect (a messages.js code, e.g. "network_blocked", "at_capacity").
export async function checkConnection({
  sessionsUrl = "/api/sessions",
  iceServersUrl = "/api/ice-servers",
  iceServers: fallback = [],
  extraBody = {},
} = {}) {
  const iceServers = await fetchIceServers(iceServersUrl, extraBody, fallback);
  const relays = configuredRelays(iceServers);
  const pc = new RTCPeerConnection({ iceServers });
  const gathered = new Set();
  pc.addEventListener("icecandidate", ({ candidate }) => {
    if (candidate?.type === "relay") gathered.add(pathOf(candidate));
  });
  let sessionId = null;
  let outcome = { code: null, detail: null };
  try {
    pc.addTransceiver("audio", { direction: "sendrecv" }); // the server wants Opus audio
    pc.createDataChannel("events");
    await pc.setLocalDescription(await pc.createOffer());
    await gatherCandidates(pc, { timeoutMs: GATHER_ALL_MS, relays: false });
    const offer = { ...extraBody, sdp: pc.localDescription.sdp, type: "offer" };
    const answer = await postOffer(sessionsUrl, offer);
    sessionId = answer.session_id;
    await pc.setRemoteDescription({ type: answer.type, sdp: answer.sdp });
    if (await connected(pc)) await settle(pc);
    else outcome = { code: "network_blocked", detail: null };
  } catch (error) {
    // A refusal has the server's code; anything else is named by the browser's error.
    const code = error.name === "RelayError" ? error.code : error.name;
    outcome = { code, detail: error.detail ?? error.message };
  }
  const { paths, selected } = await pathReport(pc);
  if (sessionId) await deleteSession(sessionsUrl, sessionId);
  pc.close();
  for (const path of PATHS) {
    if (path !== "direct-udp" && !relays.has(path)) paths[path] = "off";
    else if (gathered.has(path) && paths[path] === "none") paths[path] = "reachable";
    // Without an answer no check ran: only a relay's allocation says anything then.
    else if (paths[path] === "none" || paths[path] === "tried") {
      paths[path] = sessionId || path !== "direct-udp" ? "blocked" : "untested";
    }
  }
  return { paths, selected, rttMs: selected?.rttMs ?? null, ...outcome };
}

// Whether the peer connection connects before ICE_CONNECT_TIMEOUT_MS (false once it failed).
function connected(pc) {
  return new Promise((resolve) => {
    const done = (value) => {
      clearTimeout(timer);
      pc.removeEventListener("connectionstatechange", onChange);
      resolve(value);
    };
    const onChange = () => {
      if (pc.connectionState === "connected") done(true);
      else if (pc.connectionState === "failed" || pc.connectionState === "closed") done(false);
    };
    const timer = setTimeout(() => done(false), ICE_CONNECT_TIMEOUT_MS);
    pc.addEventListener("connectionstatechange", onChange);
    onChange();
  });
}

// Waits SETTLE_MS, and on until the selected pair has a round trip (RTT_WAIT_MS at most).
async function settle(pc) {
  await sleep(SETTLE_MS);
  for (let waited = SETTLE_MS; waited < RTT_WAIT_MS; waited += 250) {
    if ((await selectedPair(pc))?.rttMs != null) return;
    await sleep(250);
  }
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
