// static/messages.js under Node's test runner (tests/test_page_messages.py runs it): every code
// has words in both languages, server text is only ever a detail, unknown codes still say so.
import assert from "node:assert/strict";
import { test } from "node:test";

import { Translator } from "../../static/i18n.js";
import { ERROR_CODES, endedMessage, errorMessage } from "../../static/messages.js";

const en = new Translator({ lang: "en" });
const zh = new Translator({ lang: "zh" });
const HAN = /\p{Script=Han}/u;

function words(translator, { key, params }) {
  return translator.t(key, params);
}

test("every code has its own words in English and Chinese", () => {
  const reasons = ["max_duration", "server_shutdown", "backend_error"];
  const retrying = ["rate_limited", "relay_error"].map((code) => errorMessage({ code, retryAfterS: 3 }));
  const messages = [...ERROR_CODES.map((code) => errorMessage({ code })), ...retrying, ...reasons.map(endedMessage)];
  for (const message of messages) {
    assert.notEqual(words(en, message), message.key, `no English words for ${message.code}`);
    assert.match(words(zh, message), HAN, `no Chinese words for ${message.code}`);
    assert.doesNotMatch(words(en, message), /\{\w+\}/, `unfilled placeholder for ${message.code}`);
  }
});

test("a backend error shows the page's words and the model's raw text as the detail", () => {
  const message = errorMessage({ code: "backend_error", detail: "Upstream timeout (code 504)" });
  assert.equal(words(en, message), "The voice model reported a problem.");
  assert.equal(words(zh, message), "语音模型报告了一个问题。");
  assert.equal(message.detail, "Upstream timeout (code 504)");
  assert.equal(errorMessage({ code: "backend_error" }).detail, null);
});

test("an unknown code gets the generic words, naming the code", () => {
  const message = errorMessage({ code: "quota_exhausted", detail: "monthly quota used up" });
  assert.equal(message.key, "error.generic");
  assert.equal(words(en, message), "Something went wrong (quota_exhausted).");
  assert.equal(words(zh, message), "出现问题（quota_exhausted）。");
  assert.equal(message.detail, "monthly quota used up");
  assert.equal(errorMessage({ code: "constructor" }).key, "error.generic");
});

test("unknown codes are placed by their HTTP status", () => {
  assert.equal(errorMessage({ code: "http_429", status: 429 }).key, "error.busy");
  const proxy = errorMessage({ code: "http_502", detail: "502 Bad Gateway", status: 502 });
  assert.equal(proxy.key, "error.unavailable");
  assert.equal(proxy.detail, "502 Bad Gateway");
});

test("busy and unavailable say when to try again; words that say it all hide the detail", () => {
  const busy = errorMessage({ code: "rate_limited", detail: "too many sessions", status: 429, retryAfterS: 7 });
  assert.equal(words(en, busy), "Too many conversations right now. Please try again in 7 seconds.");
  assert.equal(busy.detail, null);
  assert.equal(errorMessage({ code: "at_capacity", retryAfterS: 0 }).key, "error.busy");
  const mic = errorMessage({ code: "mic_error", detail: "TypeError" });
  assert.equal(words(en, mic), "The microphone could not be opened.");
  assert.equal(mic.detail, "TypeError");
  assert.equal(errorMessage({ code: "mic_denied", detail: "NotAllowedError" }).detail, null);
});

test("a hang-up needs no message; other ends say why", () => {
  assert.equal(endedMessage("hangup"), null);
  assert.equal(endedMessage("max_duration").key, "ended.max_duration");
  for (const reason of ["ice_failed", "backend_closed", "channel_closed", "ended"]) {
    assert.equal(endedMessage(reason).key, "ended.dropped");
  }
});
