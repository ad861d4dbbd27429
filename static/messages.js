// Plain-words messages (i18n keys and parameters) for client errors, server errors and end reasons.

const OWN_KEYS = new Set([
  "no_webrtc",
  "insecure_context",
  "mic_denied",
  "no_mic",
  "mic_busy",
  "network",
  "backend_unavailable",
  "not_connected",
]);
const BUSY_CODES = new Set(["at_capacity", "rate_limited", "too_many_requests", "too_many_sessions"]);

// [key, params] for a RelayError (connect) or a server `error` event ({code, message}).
export function errorMessage({ code, message, status = null, retryAfterS = null }) {
  const retry = Number.isFinite(retryAfterS) && retryAfterS > 0 ? { s: retryAfterS } : null;
  if (status === 429 || BUSY_CODES.has(code)) return retry ? ["error.busy_retry", retry] : ["error.busy"];
  if (OWN_KEYS.has(code)) return [`error.${code}`];
  if (status >= 500) return retry ? ["error.unavailable_retry", retry] : ["error.unavailable"];
  const detail = message || code || "?";
  if (code === "mic_error") return ["error.mic_error", { detail: detail.replace(/^.*\((.+)\)\.?$/, "$1") }];
  if (code === "backend_error") {
    return ["error.backend_error", { detail: detail.replace(/^The model reported:\s*/, "") }];
  }
  if (code === "invalid_client_event") return ["error.invalid_client_event", { detail }];
  return ["error.generic", { detail }];
}

// [key, params] for why a conversation ended without the person hanging up, or null.
export function endedMessage(reason) {
  if (reason === "hangup") return null;
  if (reason === "max_duration" || reason === "server_shutdown") return [`ended.${reason}`];
  return ["ended.dropped"];
}
