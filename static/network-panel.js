// The talk UI's network parts (talk-view.js buildNetworkView): the result of "check my
// connection" and, during a call, the candidate pair it runs on (refreshed from getStats).
import { checkConnection } from "./connection-check.js";
import { h } from "./dom.js";
import { PATHS } from "./ice.js";
import { errorMessage } from "./messages.js";

const REFRESH_MS = 2000;

export class NetworkPanel {
  #timer = null;
  #client = null;
  #pair = null;
  #check = null;

  constructor(view, i18n) {
    this.view = view;
    this.i18n = i18n;
    this.lastCheck = null;
    this.#renderPair();
  }

  // Runs the probe call once (the button is off meanwhile) and shows what it found.
  async check(options) {
    const { checkButton, checkPanel, checkList } = this.view;
    if (!checkPanel) return checkConnection(options); // the compact UI has no place to show it
    if (this.#check) return this.#check;
    checkButton.disabled = true;
    checkPanel.hidden = false;
    checkList.replaceChildren();
    this.i18n.text(this.view.checkSummary, "check.running");
    this.#check = checkConnection(options);
    try {
      this.lastCheck = await this.#check;
    } finally {
      this.#check = null;
      checkButton.disabled = this.#client !== null;
    }
    this.#renderCheck();
    return this.lastCheck;
  }

  // Follows `client`'s selected candidate pair until stop(); no check runs during a call.
  track(client) {
    this.stop();
    this.#client = client;
    if (this.view.checkButton) this.view.checkButton.disabled = true;
    const refresh = async () => {
      const pair = await client.connectionInfo().catch(() => null);
      if (this.#client !== client) return;
      this.#pair = pair;
      this.#renderPair();
    };
    this.#timer = setInterval(refresh, REFRESH_MS);
    client.addEventListener("connectionstate", refresh);
    client.addEventListener("thinking", (event) => {
      if (this.#client === client) this.#renderThinking(event.detail);
    });
  }

  // The reasoning of the reply in progress, as text (never markup).
  #renderThinking({ text }) {
    const { debugThinking } = this.view;
    if (!debugThinking) return;
    debugThinking.hidden = !text;
    debugThinking.textContent = `${this.i18n.t("debug.thinking")}\n${text ?? ""}`;
  }

  stop() {
    clearInterval(this.#timer);
    this.#timer = null;
    this.#client = null;
    this.#pair = null;
    if (this.view.debugThinking) this.view.debugThinking.hidden = true;
    if (this.view.checkButton) this.view.checkButton.disabled = this.#check !== null;
    this.#renderPair();
  }

  get pair() {
    return this.#pair;
  }

  relabel() {
    this.#renderCheck();
    this.#renderPair();
  }

  #renderCheck() {
    const result = this.lastCheck;
    const { checkSummary, checkList } = this.view;
    if (!checkSummary || !result) return;
    if (result.selected) {
      const path = this.i18n.t(`path.${result.selected.path}`);
      const key = result.rttMs === null ? "check.ok" : "check.ok_rtt";
      this.i18n.text(checkSummary, key, { path, ms: result.rttMs });
    } else {
      const { key, params } = errorMessage({ code: result.code ?? "network_blocked", detail: result.detail });
      this.i18n.text(checkSummary, key, params);
    }
    checkSummary.dataset.result = result.selected ? "ok" : (result.code ?? "network_blocked");
    checkList.replaceChildren(
      ...PATHS.map((path) =>
        h(
          "div",
          { class: "check__row", dataset: { path, status: result.paths[path] } },
          this.i18n.text(h("dt"), `path.${path}`),
          this.i18n.text(h("dd"), `check.${result.paths[path]}`),
        ),
      ),
    );
  }

  #renderPair() {
    const { debugList: list, debugNone } = this.view;
    if (!list) return;
    const pair = this.#pair;
    list.hidden = !pair;
    debugNone.hidden = Boolean(pair);
    if (!pair) {
      list.replaceChildren();
      delete list.dataset.path;
      return;
    }
    list.dataset.path = pair.path;
    const row = (key, value) => h("div", {}, this.i18n.text(h("dt"), key), h("dd", {}, value));
    list.replaceChildren(
      row("debug.path", this.i18n.t(`path.${pair.path}`)),
      row("debug.local", describe(pair.local)),
      row("debug.remote", describe(pair.remote)),
      row("debug.rtt", pair.rttMs === null ? "–" : `${pair.rttMs} ms`),
    );
  }
}

// "relay, relayProtocol tls, 198.18.2.2:50000": the candidate's type, transport and address.
function describe({ type, protocol, relayProtocol, address, port }) {
  const transport = relayProtocol ? `relayProtocol ${relayProtocol}` : protocol;
  return [type, transport, address && port ? `${address}:${port}` : address].filter(Boolean).join(", ");
}
