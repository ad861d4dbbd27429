// The page's own words (i18n keys) for every code it can meet: its own, the server's HTTP refusals
// of a new session, data channel `error` events and `ended` reasons. Server and browser text is
// never parsed: it is shown as it came, under the words, where it helps.

// code -> [i18n key, whether the raw detail is shown under the words]
const WORDS = new Map([
  // The page's own (rtc-client.js, talk-ui.js); the detail is the browser's error name or text.
  ["no_webrtc", ["error.no_webrtc", false]],
  ["insecure_context", ["error.insecure_context", false]],
  ["mic_denied", ["error.mic_denied", false]],
  ["no_mic", ["error.no_mic", false]],
  ["mic_busy", ["error.mic_busy", false]],
  ["mic_error", ["error.mic_error", true]],
  ["network", ["error.network", false]],
  ["not_connected", ["error.not_connected", false]],
  ["autoplay", ["error.autoplay", false]],
  // ICE never connected (rtc-client.js, connection-check.js): UDP and every relay are blocked.
  ["network_blocked", ["error.network_blocked", false]],
  // POST /api/sessions refusals (web/errors.py, web/admission.py, web/routes/sessions.py,
  // web/links/access.py); the detail is the server's `message`.
  ["bad_offer", ["error.bad_offer", true]],
  ["invalid_request", ["error.refused", true]],
  ["body_too_large", ["error.refused", true]],
  ["unsupported_media_type", ["error.refused", true]],
  ["http_error", ["error.refused", true]],
  ["bad_request", ["error.refused", true]],
  ["host_not_allowed", ["error.refused", true]],
  ["client_disconnected", ["error.refused", true]],
  ["internal_error", ["error.unavailable", true]],
  ["link_not_found", ["error.link_not_found", false]],
  ["link_revoked", ["error.link_revoked", false]],
  ["link_expired", ["error.link_expired", false]],
  ["bad_token", ["error.bad_token", false]],
  ["origin_not_allowed", ["error.origin_not_allowed", false]],
  ["backend_not_configured", ["error.backend_not_configured", false]],
  ["rate_limited", ["error.busy", false]],
  ["at_capacity", ["error.busy", false]],
  ["draining", ["error.unavailable", false]], // a deploy: this instance takes no new calls
  ["shared_state_unavailable", ["error.shared_state_unavailable", false]], // Redis lost
  ["relay_error", ["error.unavailable", true]],
  // HTTP 502 and data channel `error` events (relay/session.py); the detail is the server's.
  ["backend_unavailable", ["error.backend_unavailable", true]],
  ["backend_error", ["error.backend_error", true]],
  ["backend_rejected_session", ["error.backend_rejected_session", true]],
  ["invalid_client_event", ["error.invalid_client_event", true]],
  ["too_many_messages", ["error.too_many_messages", false]],
]);
// Words that have a variant saying when to try again (Retry-After).
const RETRY_KEYS = new Set(["error.busy", "error.unavailable"]);
const ENDED_KEYS = new Map([
  ["max_duration", "ended.max_duration"],
  ["server_shutdown", "ended.server_shutdown"],
  ["server_draining", "ended.server_draining"], // only when its reconnect failed
  ["network_blocked", "error.network_blocked"],
]);

export const ERROR_CODES = Object.freeze([...WORDS.keys()]);

// {code, key, params, detail} for a RelayError or a data channel `error` event ({code, detail}).
// An unknown code is placed by its HTTP status (a proxy's page gets `http_<status>`), else shown
// as it is; `detail` is null when the words say it all.
export function errorMessage({ code, detail = "", status = null, retryAfterS = null }) {
  let [key, showDetail] = WORDS.get(code) ?? byStatus(status);
  const params = { code };
  if (RETRY_KEYS.has(key) && Number.isFinite(retryAfterS) && retryAfterS > 0) {
    key = `${key}_retry`;
    params.s = retryAfterS;
  }
  return { code, key, params, detail: showDetail && detail ? String(detail) : null };
}

function byStatus(status) {
  if (status === 429) return ["error.busy", false];
  if (status >= 500) return ["error.unavailable", true];
  return ["error.generic", true];
}

// The message for why a conversation ended without the person hanging up, or null. Reasons are
// the server's `ended` reasons (relay/session.py) and the page's own (rtc-client.js:
// channel_closed, disconnected, ice_failed, network_blocked); the rest mean the connection was lost.
export function endedMessage(reason) {
  if (reason === "hangup") return null;
  return { code: reason, key: ENDED_KEYS.get(reason) ?? "ended.dropped", params: {}, detail: null };
}
