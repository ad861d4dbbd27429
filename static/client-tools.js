// Client tools: a link may declare tools the page runs ("show product X", "open the checkout").
// The relay sends a `tool_call` {call_id, name, arguments}; the page answers with a `tool_result`
// {call_id, output} or {call_id, error}. RelayClient runs its `onToolCall` handler through
// runToolCall; inside the widget's iframe that handler is hostToolHandler, which asks the host page.

// The relay gives a call about 15 s; answering first lets the model hear the page's own reason.
export const TOOL_TIMEOUT_MS = 12_000;
// The relay refuses data channel messages beyond 8 KiB (relay/policy.py).
export const MAX_RESULT_BYTES = 8 * 1024;
const MAX_ERROR_CHARS = 1000; // relay/policy.py

// A server `tool_call` event as {call_id, name, arguments}, or null when it is not one.
export function parseToolCall(event) {
  const { call_id: callId, name, arguments: args } = event ?? {};
  if (typeof callId !== "string" || !callId || typeof name !== "string") return null;
  const plain = args !== null && typeof args === "object" && !Array.isArray(args);
  return { call_id: callId, name, arguments: plain ? args : {} };
}

// Runs `handler(call, signal)` and resolves to the tool_result event; never rejects. No handler,
// a throw, a non-JSON or too large output, or no answer within `timeoutMs` give an error result;
// `signal` aborts when the call is given up.
export async function runToolCall(call, handler, timeoutMs = TOOL_TIMEOUT_MS) {
  const result = (fields) => ({ type: "tool_result", call_id: call.call_id, ...fields });
  if (typeof handler !== "function") return result({ error: `no handler for the client tool ${call.name}` });
  const controller = new AbortController();
  const timer = setTimeout(
    () => controller.abort(new Error(`the page did not answer within ${timeoutMs / 1000} s`)),
    timeoutMs,
  );
  const givenUp = new Promise((_, reject) => {
    controller.signal.addEventListener("abort", () => reject(controller.signal.reason), { once: true });
  });
  try {
    const output = await Promise.race([Promise.resolve().then(() => handler(call, controller.signal)), givenUp]);
    const answer = result({ output: JSON.parse(JSON.stringify(output ?? null)) });
    const bytes = new TextEncoder().encode(JSON.stringify(answer)).length;
    if (bytes > MAX_RESULT_BYTES) return result({ error: `the output is too large (${bytes} bytes)` });
    return answer;
  } catch (error) {
    const message = String(error?.message ?? error) || "the tool failed";
    return result({ error: message.slice(0, MAX_ERROR_CHARS) });
  } finally {
    clearTimeout(timer);
    controller.abort(new Error("answered"));
  }
}

// Inside the widget's iframe: a handler that posts each call to the host page and resolves with
// its answer. Calls go only to the link's own `origins` (never "*": another site framing the
// page learns nothing), answers count only from the parent window on one of those origins.
export function hostToolHandler(origins, { host = window.parent } = {}) {
  const allowed = new Set(origins);
  const pending = new Map();
  window.addEventListener("message", (event) => {
    const message = event.data?.voiceRelay;
    if (event.source !== host || !allowed.has(event.origin) || message?.type !== "tool_result") return;
    const settle = pending.get(message.call_id);
    if (!settle) return;
    pending.delete(message.call_id);
    if (message.error !== undefined) settle.reject(new Error(String(message.error)));
    else settle.resolve(message.output);
  });
  return (call, signal) => {
    const targets = hostOrigins(allowed);
    if (targets.length === 0) throw new Error(`no handler for the client tool ${call.name}`);
    return new Promise((resolve, reject) => {
      pending.set(call.call_id, { resolve, reject });
      signal?.addEventListener("abort", () => pending.delete(call.call_id), { once: true });
      const message = { voiceRelay: { type: "tool_call", ...call } };
      for (const origin of targets) host.postMessage(message, origin);
    });
  };
}

// The allowed origins the host may be on: the parent's own where the browser says it
// (ancestorOrigins), else all of them (postMessage delivers only to the matching one).
function hostOrigins(allowed) {
  const parent = window.location.ancestorOrigins?.[0];
  if (parent === undefined) return [...allowed];
  return allowed.has(parent) ? [parent] : [];
}
