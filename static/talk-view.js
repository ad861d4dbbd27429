// The talk UI's elements: built once, labelled through the translator, wired to `actions`.
import { h, ICONS, icon } from "./dom.js";

let views = 0;

// Returns the root element (`el`) and the parts talk-ui.js updates. `actions` holds the
// handlers: toggle, mute, interrupt, dismiss, alertAction, download(format), submit(text), check.
export function buildTalkView(i18n, { compact = false, actions }) {
  const prefix = `talk${++views}`;
  const id = (name) => `${prefix}-${name}`;
  const label = (key) => i18n.text(h("span"), key);
  const v = {};

  v.statusText = h("span", { class: "status__text" });
  v.statusExtra = h("span", { class: "status__extra" });
  const status = h(
    "p",
    { class: "status", role: "status", "aria-live": "polite" },
    h("span", { class: "status__dot", "aria-hidden": "true" }),
    v.statusText,
    v.statusExtra,
  );
  v.callLabel = h("span");
  v.callButton = h("button", { type: "button", class: "call", onclick: actions.toggle });

  v.alertText = h("p", { class: "alert__text" });
  // The server's or browser's own text behind the words, as it came (not translated).
  v.alertDetail = h("p", { class: "alert__detail", hidden: true });
  v.alertAction = h("button", {
    type: "button",
    class: "button button--small",
    hidden: true,
    onclick: actions.alertAction,
  });
  const dismiss = h("button", { type: "button", class: "alert__close", onclick: actions.dismiss }, icon(ICONS.close));
  i18n.attr(dismiss, "aria-label", "alert.dismiss");
  const alertBody = h("div", { class: "alert__body" }, v.alertText, v.alertDetail);
  v.alert = h("div", { class: "alert", role: "alert", hidden: true }, alertBody, v.alertAction, dismiss);

  const meter = (key, kind) =>
    h(
      "div",
      { class: `meter meter--${kind}` },
      label(key),
      h("span", { class: "meter__track" }, h("span", { class: "meter__fill" })),
    );
  v.meterIn = meter("meter.you", "in");
  v.meterOut = meter("meter.assistant", "out");
  const meters = h("div", { class: "meters", "aria-hidden": "true" }, v.meterIn, v.meterOut);

  v.toneList = h("dl", { class: "tone__cues" });
  v.tonePanel = compact
    ? null
    : h(
        "section",
        { class: "tone", hidden: true, "aria-labelledby": id("tone") },
        i18n.text(h("h3", { id: id("tone"), class: "tone__title" }), "tone.title"),
        v.toneList,
      );

  v.muteLabel = h("span");
  v.muteButton = h("button", { type: "button", class: "button", "aria-pressed": "false", onclick: actions.mute });
  v.interruptButton = h(
    "button",
    { type: "button", class: "button", onclick: actions.interrupt },
    icon(ICONS.hand),
    label("control.interrupt"),
  );
  const controls = h("div", { class: "controls" }, v.muteButton, v.interruptButton);
  const network = compact ? null : buildNetworkView(v, i18n, id, label, actions.check);

  v.log = h("ol", {
    class: "log",
    role: "log",
    "aria-live": "polite",
    "aria-labelledby": id("conv"),
    tabindex: "0",
  });
  v.emptyNote = i18n.text(h("p", { class: "log__empty" }), "conv.empty");
  const download = (format, key) => {
    const button = h(
      "button",
      {
        type: "button",
        class: "button button--small button--quiet",
        dataset: { format },
        onclick: () => actions.download(format),
      },
      icon(ICONS.download),
      label(`conv.${format}`),
    );
    i18n.attr(button, "aria-label", key);
    return i18n.attr(button, "title", key);
  };
  v.downloadButtons = compact ? [] : [download("txt", "conv.download_txt"), download("json", "conv.download_json")];

  v.input = h("input", {
    id: id("input"),
    class: "composer__input",
    type: "text",
    autocomplete: "off",
    maxlength: "2000",
    enterkeyhint: "send",
  });
  v.sendButton = h("button", { type: "submit", class: "button button--primary" }, icon(ICONS.send), label("composer.send"));
  const composer = h(
    "form",
    {
      class: "composer",
      onsubmit: (event) => {
        event.preventDefault();
        if (actions.submit(v.input.value)) v.input.value = "";
      },
    },
    i18n.text(h("label", { for: id("input"), class: "sr-only" }), "composer.label"),
    v.input,
    v.sendButton,
  );
  v.latencyLine = compact ? null : h("p", { class: "latency" });

  v.player = h("audio", { class: "player", autoplay: true, playsinline: true });
  v.el = h(
    "div",
    { class: `talk${compact ? " talk--compact" : ""}` },
    h("section", { class: "stage card" }, status, v.callButton, v.alert, meters, v.tonePanel, controls, network),
    h(
      "section",
      { class: "conversation card", "aria-labelledby": id("conv") },
      h(
        "header",
        { class: "conversation__head" },
        i18n.text(h("h2", { id: id("conv"), class: "conversation__title" }), "conv.title"),
        v.downloadButtons.length ? h("div", { class: "downloads" }, v.downloadButtons) : null,
      ),
      h("div", { class: "conversation__body" }, v.emptyNote, v.log),
      composer,
      v.latencyLine,
    ),
    v.player,
  );
  return v;
}

// The connection check (button, summary, one row per path) and the connection details of the
// live call (a disclosure with the selected candidate pair), filled in by talk-ui.js.
function buildNetworkView(v, i18n, id, label, check) {
  const quiet = "button button--small button--quiet";
  v.checkButton = h("button", { type: "button", class: quiet, onclick: check }, label("check.run"));
  v.checkSummary = h("p", { class: "check__summary", "aria-live": "polite" });
  v.checkList = h("dl", { class: "check__paths" });
  v.checkPanel = h(
    "section",
    { class: "check", hidden: true, "aria-labelledby": id("check") },
    i18n.text(h("h3", { id: id("check"), class: "check__title" }), "check.title"),
    v.checkSummary,
    v.checkList,
  );
  v.debugNone = i18n.text(h("p", { class: "debug__none" }), "debug.none");
  v.debugList = h("dl", { class: "debug__pair", hidden: true });
  // A thinking model's reasoning: here only, never spoken nor in the transcript.
  v.debugThinking = h("pre", { class: "debug__thinking", hidden: true });
  v.debugPanel = h("details", { class: "debug" }, i18n.text(h("summary"), "debug.title"), v.debugNone, v.debugList, v.debugThinking);
  return h("div", { class: "network" }, v.checkButton, v.checkPanel, v.debugPanel);
}
