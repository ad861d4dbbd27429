// Talk, demo link and embed pages: mounts the talk UI and wires the language switch.
import { hostToolHandler } from "./client-tools.js";
import { LANGUAGES, Translator } from "./i18n.js";
import { mountTalkUI } from "./talk-ui.js";

const config = JSON.parse(document.getElementById("relay-config").textContent);
const translator = new Translator({ lang: config.forceLanguage, fallback: config.language });
const languageSelect = document.getElementById("language");

if (languageSelect) {
  for (const [code, { name, tag }] of Object.entries(LANGUAGES)) {
    languageSelect.append(new Option(name, code, false, code === translator.lang));
    languageSelect.lastElementChild.lang = tag;
  }
  languageSelect.addEventListener("change", () => translator.setLang(languageSelect.value));
}
translator.apply(document);

const ui = mountTalkUI(document.getElementById("app"), {
  config,
  translator,
  compact: Boolean(config.compact),
});
// For debugging and the browser tests: the UI, its RelayClient (ui.client) and its microphone.
window.voiceRelay = ui;

// Inside the widget's iframe: tell the host page's widget (any origin may embed the state, nothing
// more) whether a conversation is live, and let the host page (the link's origins only) run the
// link's client tools.
if (config.compact && window.parent !== window) {
  ui.onToolCall = hostToolHandler(config.hostOrigins ?? []);
  ui.addEventListener("statechange", (event) => {
    window.parent.postMessage({ voiceRelay: { type: "state", state: event.detail.state } }, "*");
  });
}
