// The page's reconnect path (static/rtc-client.js) under Node's test runner (tests/test_drain.py
// runs it): a deploy's `server_draining` end reconnects even when the reconnects are used up.
import assert from "node:assert/strict";
import { test } from "node:test";

import { DRAIN_END_REASON, endAction } from "../../static/rtc-client.js";
import { Translator } from "../../static/i18n.js";
import { endedMessage, errorMessage } from "../../static/messages.js";

test("the drain reason reconnects without using up a reconnect", () => {
  assert.equal(DRAIN_END_REASON, "server_draining");
  assert.equal(endAction("server_draining", { reconnects: 1, reconnectsLeft: 1 }), "reconnect_free");
  assert.equal(endAction("server_draining", { reconnects: 1, reconnectsLeft: 0 }), "reconnect_free");
  // A page that asked for no reconnects keeps its behaviour.
  assert.equal(endAction("server_draining", { reconnects: 0, reconnectsLeft: 0 }), "finish");
});

test("other ends keep their behaviour", () => {
  assert.equal(endAction("hangup", { reconnects: 1, reconnectsLeft: 1 }), "finish");
  assert.equal(endAction("max_duration", { reconnects: 1, reconnectsLeft: 1 }), "finish");
  assert.equal(endAction("server_shutdown", { reconnects: 1, reconnectsLeft: 1 }), "reconnect");
  assert.equal(endAction("ice_failed", { reconnects: 1, reconnectsLeft: 0 }), "finish");
});

test("the drain's words exist in English and Chinese", () => {
  const en = new Translator({ lang: "en" });
  const zh = new Translator({ lang: "zh" });
  for (const { key, params } of [endedMessage("server_draining"), errorMessage({ code: "draining" })]) {
    assert.notEqual(en.t(key, params), key);
    assert.match(zh.t(key, params), /\p{Script=Han}/u);
  }
  assert.equal(endedMessage("server_draining").key, "ended.server_draining");
  for (const translator of [en, zh]) assert.notEqual(translator.t("conv.server_moved"), "conv.server_moved");
});
