// The conversation view: streaming transcript bubbles, notes, tool activity, text/JSON export.
import { h } from "./dom.js";
import { toneCues } from "./tone.js";

const STICK_TO_BOTTOM_PX = 48;
// Tool kinds with words of their own ("Searching the web…"); the others say "Calling NAME…".
const BUILTIN_TOOLS = new Set(["web_search", "retrieval"]);
const TOOL_STATUSES = new Set(["started", "done", "failed"]);

export class ConversationLog {
  #entries = [];
  #byKey = new Map();
  #counter = 0;
  #pendingLatency = null;
  #voice = null;

  constructor(list, translator, { onChange } = {}) {
    this.list = list;
    this.i18n = translator;
    this.onChange = onChange ?? (() => {});
  }

  get entries() {
    return this.#entries;
  }

  // A server transcript event: the whole text so far of one role's item; replaces its bubble.
  transcript({ role, item_id: itemId, text, final }) {
    if (role !== "user" && role !== "assistant") return;
    let entry = itemId ? this.#byKey.get(`${role}:${itemId}`) : null;
    if (!entry && role === "user" && !itemId) {
      // The server confirms a typed message with a final user transcript without an item id.
      entry = this.#entries.find((e) => e.pending && e.text === text) ?? null;
    }
    if (!entry && role === "user" && itemId) {
      // The first transcript of a spoken turn fills the bubble made when the person spoke.
      // Turns are transcribed in order, so it is the first unnamed one after the last named.
      const lastNamed = this.#entries.findLastIndex((e) => e.role === "user" && e.itemId);
      entry = this.#entries.find((e, i) => i > lastNamed && e.spoken && !e.itemId) ?? null;
      if (entry) {
        entry.itemId = itemId;
        this.#byKey.set(`user:${itemId}`, entry);
      }
    }
    if (!entry) entry = this.#add(role, { itemId });
    entry.text = text ?? "";
    entry.final = Boolean(final);
    entry.pending = false;
    if (role === "assistant" && this.#pendingLatency !== null) {
      entry.latencyMs = this.#pendingLatency;
      this.#pendingLatency = null;
    }
    this.#render(entry);
  }

  // A message the person typed, shown at once and confirmed when the server echoes it back.
  typed(text) {
    const entry = this.#add("user", { pending: true });
    entry.text = text;
    entry.final = true;
    this.#render(entry);
  }

  // The person started speaking: a bubble holds the turn's place until its transcript arrives.
  speechStarted() {
    this.speechStopped();
    const entry = this.#add("user", { spoken: true });
    entry.startedAt = performance.now();
    this.#voice = entry;
    this.#render(entry);
  }

  speechStopped() {
    const entry = this.#voice;
    this.#voice = null;
    if (!entry) return;
    entry.durationS = (performance.now() - entry.startedAt) / 1000;
    if (!entry.text) entry.final = true;
    this.#render(entry);
  }

  note(key, params) {
    const entry = this.#add("note", { key, params });
    entry.final = true;
    this.#render(entry);
  }

  // Tool activity, merged by call_id: the relay's `tool` events {name, kind, status}, a client
  // call's `tool_call` {name, arguments} and the page's answer {output | error}.
  tool({ call_id: callId, name, kind, status, arguments: args, output, error }) {
    if (typeof callId !== "string" || !callId) return;
    let entry = this.#byKey.get(`tool:${callId}`);
    if (!entry) {
      entry = this.#add("tool", { itemId: callId });
      entry.tool = { call_id: callId, name: "", kind: "client", status: "started" };
    }
    const tool = entry.tool;
    if (typeof name === "string" && name) tool.name = name;
    if (typeof kind === "string" && kind) tool.kind = kind;
    if (args !== undefined) tool.arguments = args;
    if (output !== undefined) tool.output = output;
    if (error !== undefined) tool.error = String(error);
    if (TOOL_STATUSES.has(status)) tool.status = status;
    else if ((output !== undefined || error !== undefined) && tool.status === "started") {
      // The page answered a client call before the relay said how it went.
      tool.status = error === undefined ? "done" : "failed";
    }
    entry.final = tool.status !== "started";
    this.#render(entry);
  }

  latency(ms) {
    const last = this.#entries.findLast((e) => e.role !== "note");
    if (last?.role === "assistant" && last.latencyMs === null) {
      last.latencyMs = ms;
      this.#render(last);
    } else {
      this.#pendingLatency = ms;
    }
  }

  interrupted(itemId) {
    const entry =
      (itemId && this.#byKey.get(`assistant:${itemId}`)) ?? this.#entries.findLast((e) => e.role === "assistant");
    if (!entry) return;
    entry.interrupted = true;
    this.#render(entry);
  }

  tone(event) {
    const role = event.role ?? "user";
    const entry =
      (event.item_id && this.#byKey.get(`${role}:${event.item_id}`)) ??
      this.#entries.findLast((e) => e.role === role);
    if (!entry) return;
    entry.tone = event;
    this.#render(entry);
  }

  // Re-renders every bubble (after a language switch).
  refresh() {
    this.#entries.forEach((entry) => this.#render(entry, { scroll: false }));
  }

  clear() {
    this.#voice = null;
    this.#entries = [];
    this.#byKey.clear();
    this.#pendingLatency = null;
    this.list.replaceChildren();
    this.onChange();
  }

  toText() {
    const t = (key, params) => this.i18n.t(key, params);
    const lines = [t("conv.export_title", { time: new Date().toLocaleString(this.i18n.lang) }), ""];
    for (const entry of this.#entries) {
      const time = entry.at.toLocaleTimeString(this.i18n.lang, { hour12: false });
      const extras = [];
      if (entry.interrupted) extras.push(t("conv.interrupted"));
      if (entry.latencyMs !== null) extras.push(t("conv.latency", { ms: Math.round(entry.latencyMs) }));
      const suffix = extras.length ? ` (${extras.join(", ")})` : "";
      const details = entry.tool ? toolDetails(entry.tool) : "";
      lines.push(`[${time}] ${t(`role.${entry.role}`)}: ${this.#textOf(entry)}${details}${suffix}`);
    }
    return `${lines.join("\n")}\n`;
  }

  toJSON() {
    return {
      exported_at: new Date().toISOString(),
      entries: this.#entries.map((entry) => ({
        role: entry.role,
        text: entry.role === "note" || !entry.spoken || entry.text ? this.#textOf(entry) : "",
        spoken: entry.spoken,
        duration_s: entry.durationS === null ? null : Number(entry.durationS.toFixed(1)),
        item_id: entry.itemId,
        final: entry.final,
        time: entry.at.toISOString(),
        latency_ms: entry.latencyMs,
        interrupted: entry.interrupted,
        tone: entry.tone,
        tool: entry.tool,
      })),
    };
  }

  // Saves the conversation as conversation-<date>.txt or .json.
  download(format) {
    const json = format === "json";
    const body = json ? JSON.stringify(this.toJSON(), null, 2) : this.toText();
    const blob = new Blob([body], { type: json ? "application/json" : "text/plain;charset=utf-8" });
    const url = URL.createObjectURL(blob);
    const stamp = new Date().toISOString().slice(0, 16).replace(/[:T]/g, "-");
    const link = h("a", { href: url, download: `conversation-${stamp}.${json ? "json" : "txt"}`, hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 0);
  }

  #add(role, { itemId = null, pending = false, spoken = false, key = null, params = null } = {}) {
    this.#counter += 1;
    const entry = {
      id: `${role}-${this.#counter}`,
      role,
      itemId,
      key,
      params,
      text: "",
      final: false,
      pending,
      spoken,
      startedAt: null,
      durationS: null,
      interrupted: false,
      latencyMs: null,
      tone: null,
      tool: null,
      at: new Date(),
      element: null,
    };
    if (itemId) this.#byKey.set(`${role}:${itemId}`, entry);
    this.#entries.push(entry);
    return entry;
  }

  #textOf(entry) {
    if (entry.role === "note") return this.i18n.t(entry.key, entry.params ?? undefined);
    if (entry.role === "tool") {
      const { kind, status, name } = entry.tool;
      const family = BUILTIN_TOOLS.has(kind) ? kind : "call";
      return this.i18n.t(`tool.${family}.${status}`, { name });
    }
    if (entry.spoken && !entry.text) {
      if (!entry.final) return this.i18n.t("conv.speaking");
      return this.i18n.t("conv.spoken", { s: (entry.durationS ?? 0).toFixed(1) });
    }
    return entry.text;
  }

  #render(entry, { scroll = true } = {}) {
    const list = this.list;
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < STICK_TO_BOTTOM_PX;
    const t = (key, params) => this.i18n.t(key, params);
    const meta = [];
    if (entry.pending) meta.push(t("conv.sending"));
    if (entry.interrupted) meta.push(t("conv.interrupted"));
    if (entry.latencyMs !== null) meta.push(t("conv.latency", { ms: Math.round(entry.latencyMs) }));
    const cues = entry.tone ? toneCues(entry.tone, t) : [];
    const element = entry.element ?? list.appendChild(h("li"));
    entry.element = element;
    const placeholder = entry.spoken && !entry.text;
    element.className = [
      "msg",
      `msg--${entry.role}`,
      entry.final ? "" : "msg--streaming",
      entry.interrupted ? "msg--interrupted" : "",
      placeholder ? "msg--placeholder" : "",
    ].filter(Boolean).join(" ");
    element.dataset.role = entry.role;
    element.dataset.final = String(entry.final);
    if (entry.tool) element.dataset.status = entry.tool.status;
    if (entry.itemId) element.dataset.itemId = entry.itemId;
    // Screen readers wait for the final text instead of reading every streamed update.
    if (entry.final) element.removeAttribute("aria-busy");
    else element.setAttribute("aria-busy", "true");
    const parts = [
      entry.role === "note" || entry.role === "tool"
        ? null
        : h("span", { class: "msg__who" }, t(`role.${entry.role}`)),
      h("p", { class: "msg__text" }, this.#textOf(entry)),
      cues.length
        ? h("ul", { class: "msg__tone", "aria-label": t("tone.title") }, cues.map((c) => h("li", {}, `${c.label} ${c.value}`)))
        : null,
      meta.length ? h("span", { class: "msg__meta" }, meta.join(" · ")) : null,
    ];
    element.replaceChildren(...parts.filter(Boolean));
    if (scroll && atBottom) list.scrollTop = list.scrollHeight;
    this.onChange();
  }
}

// A client call's arguments and answer for the text export: ` {"sku":"X"} -> {"shown":true}`.
function toolDetails({ arguments: args, output, error }) {
  if (args === undefined) return "";
  const answer = error !== undefined ? ` -> ${error}` : output !== undefined ? ` -> ${JSON.stringify(output)}` : "";
  return ` ${JSON.stringify(args)}${answer}`;
}
