// The talk page: mounts the talk UI and wires the language switch.
import { LANGUAGES, Translator } from "./i18n.js";
import { mountTalkUI } from "./talk-ui.js";

const config = JSON.parse(document.getElementById("relay-config").textContent);
const translator = new Translator();
const languageSelect = document.getElementById("language");

for (const [code, { name, tag }] of Object.entries(LANGUAGES)) {
  languageSelect.append(new Option(name, code, false, code === translator.lang));
  languageSelect.lastElementChild.lang = tag;
}
languageSelect.addEventListener("change", () => translator.setLang(languageSelect.value));
translator.apply(document);

const ui = mountTalkUI(document.getElementById("app"), { config, translator });
// For debugging and the browser tests: the UI, its RelayClient (ui.client) and its microphone.
window.voiceRelay = ui;
