// ICE for the page: the servers to use (fetched fresh for every call), when the offer can go out,
// and which path a connected peer connection took. No DOM.

// Waiting for gathering to finish can take seconds (a TURN/UDP allocation behind a firewall
// that drops UDP never answers): an offer goes out this long after the first relay candidate.
export const RELAY_GRACE_MS = 250;
// With TURN configured, how long to wait for a relay candidate before offering without one.
export const RELAY_GATHER_TIMEOUT_MS = 5000;
// A server that does not say its ICE servers by then is not waited for.
const ICE_SERVERS_TIMEOUT_MS = 5000;
// The paths a call can take, best first: what the connection check reports on.
export const PATHS = Object.freeze(["direct-udp", "turn-udp", "turn-tcp", "turn-tls"]);

// The RTCIceServer list from the server (TURN credentials are short-lived: ask before every
// call), for the demo link (`link`, `token`: the same fields the offer carries) if any. When it
// cannot be asked, `fallback`: a direct call may still work.
export async function fetchIceServers(url, { link, token } = {}, fallback = []) {
  const query = new URLSearchParams(Object.entries({ link, token }).filter(([, value]) => value));
  const search = query.toString();
  const target = search ? `${url}${url.includes("?") ? "&" : "?"}${search}` : url;
  try {
    const signal = AbortSignal.timeout?.(ICE_SERVERS_TIMEOUT_MS);
    const response = await fetch(target, { cache: "no-store", credentials: "same-origin", signal });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const body = await response.json();
    if (!Array.isArray(body.iceServers)) throw new Error("no iceServers in the answer");
    return body.iceServers;
  } catch (error) {
    console.warn(`ICE servers unavailable (${error.message}): calling without STUN/TURN`);
    return fallback;
  }
}

// The transports a list of RTCIceServer dicts offers a relay on: a subset of PATHS' turn-*.
export function configuredRelays(iceServers) {
  const relays = new Set();
  for (const server of iceServers) {
    for (const url of [server.urls].flat()) {
      const match = /^(turns?):[^?]*(?:\?transport=(\w+))?/i.exec(String(url));
      if (!match) continue;
      const [, scheme, transport = "udp"] = match;
      relays.add(scheme.toLowerCase() === "turns" ? "turn-tls" : `turn-${transport.toLowerCase()}`);
    }
  }
  return relays;
}

// Resolves when gathering completes, RELAY_GRACE_MS after the first relay candidate, or after
// timeoutMs (RELAY_GATHER_TIMEOUT_MS at least when `relays`: a relay matters more than speed
// for a client whose UDP is blocked), whichever comes first. Never rejects.
export function gatherCandidates(pc, { timeoutMs, relays = false }) {
  return new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") return resolve();
    let grace = null;
    const done = () => {
      clearTimeout(timer);
      clearTimeout(grace);
      pc.removeEventListener("icegatheringstatechange", onState);
      pc.removeEventListener("icecandidate", onCandidate);
      resolve();
    };
    const onState = () => {
      if (pc.iceGatheringState === "complete") done();
    };
    const onCandidate = ({ candidate }) => {
      if (candidate?.type === "relay" && grace === null) grace = setTimeout(done, RELAY_GRACE_MS);
    };
    const timer = setTimeout(done, relays ? Math.max(timeoutMs, RELAY_GATHER_TIMEOUT_MS) : timeoutMs);
    pc.addEventListener("icegatheringstatechange", onState);
    pc.addEventListener("icecandidate", onCandidate);
    onState();
  });
}

// The PATHS entry a local candidate (stats or RTCIceCandidate) stands for: relays by the
// transport to the TURN server, the rest by their own protocol (host, srflx and prflx are direct).
export function pathOf(candidate) {
  if (candidate.candidateType === "relay" || candidate.type === "relay") {
    return `turn-${candidate.relayProtocol ?? "udp"}`;
  }
  return `direct-${candidate.protocol ?? "udp"}`;
}

// The candidate pair a peer connection sends on, or null before it has one:
// {path, local: {type, protocol, relayProtocol, address, port, url}, remote: {...}, rttMs}.
export async function selectedPair(pc) {
  if (!pc) return null;
  const stats = await pc.getStats();
  let pair = null;
  for (const report of stats.values()) {
    if (report.type === "transport" && report.selectedCandidatePairId) {
      pair = stats.get(report.selectedCandidatePairId) ?? pair;
    }
  }
  if (!pair) return null;
  const local = stats.get(pair.localCandidateId);
  const remote = stats.get(pair.remoteCandidateId);
  if (!local || !remote) return null;
  const rtt = pair.currentRoundTripTime;
  return {
    path: pathOf(local),
    local: describe(local),
    remote: describe(remote),
    rttMs: Number.isFinite(rtt) ? Math.round(rtt * 1000) : null,
  };
}

// Per PATHS entry, what the stats show of it: "selected", "works" (a check succeeded),
// "reachable" (a relay was allocated), "tried" (candidates, no answer) or "none" (no candidates).
export async function pathReport(pc) {
  const report = Object.fromEntries(PATHS.map((path) => [path, "none"]));
  const rank = ["none", "tried", "reachable", "works", "selected"];
  const raise = (path, level) => {
    if (path in report && rank.indexOf(level) > rank.indexOf(report[path])) report[path] = level;
  };
  const stats = await pc.getStats();
  for (const entry of stats.values()) {
    if (entry.type === "local-candidate") raise(pathOf(entry), entry.candidateType === "relay" ? "reachable" : "tried");
    if (entry.type === "candidate-pair" && entry.state === "succeeded") {
      const local = stats.get(entry.localCandidateId);
      if (local) raise(pathOf(local), "works");
    }
  }
  const selected = await selectedPair(pc);
  if (selected) raise(selected.path, "selected");
  return { paths: report, selected };
}

function describe(candidate) {
  return {
    type: candidate.candidateType,
    protocol: candidate.protocol,
    relayProtocol: candidate.relayProtocol ?? null,
    address: candidate.address ?? candidate.ip ?? null,
    port: candidate.port ?? null,
    url: candidate.url ?? null,
  };
}
