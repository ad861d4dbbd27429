// voice-relay widget: <script src="https://HOST/widget.js" data-link="SLUG" async></script>
// Adds a floating talk button that opens a panel with an iframe of HOST/embed/SLUG. Everything
// lives in a shadow root: the host page's CSS cannot reach it.
//
// Client tools: the page runs the link's client tools with handlers by tool name, looked up when
// the model calls one (so they may be set before or after this script loads):
//   window.voiceRelayWidget = { tools: { show_product: async ({ sku }, call) => ({ shown: sku }) } };
// A handler's value (any JSON) goes back to the model; a throw, or no handler, is an error result.
// Its only global is that `voiceRelayWidget` object.
(() => {
  const script = document.currentScript;
  const options = script?.dataset ?? {};
  if (!options.link) {
    console.warn("[voice-relay] widget: the script tag needs data-link=\"SLUG\"");
    return;
  }
  const origin = new URL(script.src).origin;
  window.voiceRelayWidget ??= {};
  window.voiceRelayWidget.tools ??= {};
  const side = options.position === "bottom-left" ? "left" : "right";
  const theme = ["light", "dark"].includes(options.theme) ? options.theme : "auto";
  const accent = CSS.supports("color", options.accent ?? "") ? options.accent : "#3a5bd9";
  const label = options.label || "Talk to us";

  const embedUrl = new URL(`/embed/${encodeURIComponent(options.link)}`, origin);
  if (options.token) embedUrl.searchParams.set("token", options.token);
  if (options.lang) embedUrl.searchParams.set("lang", options.lang);

  const host = document.createElement("div");
  host.dataset.voiceRelayWidget = options.link;
  const root = host.attachShadow({ mode: "open" });
  const style = document.createElement("style");
  style.textContent = `
    :host { all: initial; }
    * { box-sizing: border-box; }
    .wrap { position: fixed; bottom: 20px; ${side}: 20px; z-index: 2147483000;
      font: 15px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
      --accent: ${accent}; --surface: #fff; --text: #151820; --border: #e1e4ea; }
    .wrap[data-theme="dark"] { --surface: #161920; --text: #e8ebf1; --border: #2a2f3b; }
    @media (prefers-color-scheme: dark) {
      .wrap[data-theme="auto"] { --surface: #161920; --text: #e8ebf1; --border: #2a2f3b; }
    }
    .launcher { display: flex; align-items: center; gap: 8px; margin-${side === "right" ? "left" : "right"}: auto;
      border: 0; border-radius: 999px; padding: 12px 18px; cursor: pointer;
      background: var(--accent); color: #fff; font: inherit; font-weight: 600;
      box-shadow: 0 6px 20px rgb(0 0 0 / 0.2); }
    .launcher:focus-visible, .close:focus-visible { outline: 3px solid var(--accent); outline-offset: 3px; }
    .dot { width: 10px; height: 10px; border-radius: 50%; background: #fff; opacity: .6; }
    .launcher[data-live] .dot { opacity: 1; animation: pulse 1.2s ease-in-out infinite; }
    @keyframes pulse { 50% { transform: scale(1.5); } }
    @media (prefers-reduced-motion: reduce) { .launcher[data-live] .dot { animation: none; } }
    .panel { width: min(380px, calc(100vw - 40px)); height: min(560px, calc(100vh - 110px));
      margin-bottom: 12px; display: flex; flex-direction: column; overflow: hidden;
      background: var(--surface); color: var(--text); border: 1px solid var(--border);
      border-radius: 18px; box-shadow: 0 12px 40px rgb(0 0 0 / 0.25); }
    .panel[hidden] { display: none; }
    .bar { display: flex; align-items: center; justify-content: space-between;
      padding: 8px 8px 8px 16px; border-bottom: 1px solid var(--border); font-weight: 600; }
    .close { border: 0; background: none; color: inherit; font-size: 22px; line-height: 1;
      width: 36px; height: 36px; border-radius: 50%; cursor: pointer; }
    iframe { flex: 1; width: 100%; border: 0; background: var(--surface);
      opacity: 0; transition: opacity .2s; }
    iframe[data-loaded] { opacity: 1; }
  `;
  const wrap = element("div", { class: "wrap", "data-theme": theme });
  const panel = element("div", { class: "panel", role: "dialog", "aria-label": label, hidden: "" });
  const bar = element("div", { class: "bar" });
  const title = element("span");
  title.textContent = label;
  const close = element("button", { class: "close", type: "button", "aria-label": "Close" });
  close.textContent = "×";
  bar.append(title, close);
  panel.append(bar);
  const launcher = element("button", { class: "launcher", type: "button", "aria-expanded": "false" });
  const text = element("span");
  text.textContent = label;
  launcher.append(element("span", { class: "dot", "aria-hidden": "true" }), text);
  wrap.append(panel, launcher);
  root.append(style, wrap);

  let frame = null;

  function open() {
    if (!frame) {
      // Made on first open so the page pays nothing until a visitor wants to talk.
      frame = element("iframe", {
        src: embedUrl.href,
        title: label,
        allow: "microphone; autoplay",
      });
      frame.addEventListener("load", () => frame?.setAttribute("data-loaded", ""), { once: true });
      panel.append(frame);
    }
    panel.hidden = false;
    launcher.setAttribute("aria-expanded", "true");
    frame.focus();
  }

  // Closing removes the iframe: its page hangs up and the microphone is released.
  function shut() {
    panel.hidden = true;
    launcher.setAttribute("aria-expanded", "false");
    launcher.removeAttribute("data-live");
    frame?.remove();
    frame = null;
    launcher.focus();
  }

  launcher.addEventListener("click", () => (panel.hidden ? open() : shut()));
  close.addEventListener("click", shut);
  panel.addEventListener("keydown", (event) => {
    if (event.key === "Escape") shut();
  });
  window.addEventListener("message", (event) => {
    const message = event.data?.voiceRelay;
    if (event.origin !== origin || !frame || event.source !== frame.contentWindow || !message) return;
    if (message.type === "state") {
      // The talk UI's states (talk-ui.js): every one but these is part of a call.
      const live = !["idle", "ended"].includes(message.state);
      launcher.toggleAttribute("data-live", live);
    } else if (message.type === "tool_call" && typeof message.call_id === "string") {
      runTool(message, event.source);
    }
  });

  // Runs the host's handler for a call from the iframe and answers that iframe (its origin only).
  async function runTool({ call_id: callId, name, arguments: args }, source) {
    let answer;
    try {
      const tools = window.voiceRelayWidget?.tools ?? {};
      const handler = Object.hasOwn(tools, name) ? tools[name] : null;
      if (typeof handler !== "function") throw new Error(`no handler for the client tool ${name} on this page`);
      const output = await handler(args ?? {}, { call_id: callId, name, arguments: args ?? {} });
      answer = { output: JSON.parse(JSON.stringify(output ?? null)) };
    } catch (error) {
      answer = { error: String(error?.message ?? error) || "the tool failed" };
    }
    source.postMessage({ voiceRelay: { type: "tool_result", call_id: callId, ...answer } }, origin);
  }

  script.after(host);

  function element(name, attributes = {}) {
    const el = document.createElement(name);
    for (const [key, value] of Object.entries(attributes)) el.setAttribute(key, value);
    return el;
  }
})();
