// Interface text in English and Chinese, chosen from navigator.languages and remembered.
// Elements carry their key (data-i18n, data-i18n-attrs) so a language switch re-renders them.

const STRINGS = {
  en: {
    "app.title": "Talk to the assistant",
    "app.subtitle": "Press start and speak naturally. You can interrupt at any time.",
    "app.language": "Language",
    "app.model": "Model: {model}",
    "app.noscript": "This page needs JavaScript to talk to the assistant.",
    "link.share": "Share or embed this demo",
    "demos.title": "Try a persona",
    "link.url": "Link",
    "link.embed": "Embed on your site",
    "call.start": "Start conversation",
    "call.end": "End conversation",
    "call.cancel": "Cancel",
    "state.idle": "Ready",
    "state.starting": "Waiting for the microphone…",
    "state.connecting": "Connecting…",
    "state.connecting_model": "Connecting to the voice model…",
    "state.listening": "Listening",
    "state.user_speaking": "You are speaking",
    "state.assistant_speaking": "Assistant speaking",
    "state.reconnecting": "Connection lost, reconnecting…",
    "state.ended": "Conversation ended",
    "state.muted": "microphone muted",
    "meter.you": "You",
    "meter.assistant": "Assistant",
    "tone.title": "Tone of voice",
    "tone.pitch": "Pitch",
    "tone.pitch_range": "Pitch range",
    "tone.loudness": "Loudness",
    "tone.rate": "Speaking rate",
    "tone.duration": "Length",
    "tone.voiced": "Voiced",
    "tone.syllables": "Syllables",
    "unit.sps": "syll/s",
    "conv.title": "Conversation",
    "conv.empty": "What you and the assistant say will appear here.",
    "conv.interrupted": "interrupted",
    "conv.latency": "replied in {ms} ms",
    "conv.sending": "sending…",
    "conv.speaking": "Speaking…",
    "conv.spoken": "Spoken message ({s} s)",
    "conv.reconnected": "Reconnected after the connection dropped.",
    "conv.server_moved": "The server is being updated: moving the conversation to another one.",
    "conv.download_txt": "Download text",
    "conv.download_json": "Download JSON",
    "conv.txt": "Text",
    "conv.json": "JSON",
    "conv.export_title": "Conversation exported {time}",
    "role.user": "You",
    "role.assistant": "Assistant",
    "role.note": "Note",
    "role.tool": "Tool",
    "tool.web_search.started": "Searching the web…",
    "tool.web_search.done": "Searched the web",
    "tool.web_search.failed": "The web search failed",
    "tool.retrieval.started": "Searching the knowledge base…",
    "tool.retrieval.done": "Searched the knowledge base",
    "tool.retrieval.failed": "The knowledge base search failed",
    "tool.call.started": "Calling {name}…",
    "tool.call.done": "Called {name}",
    "tool.call.failed": "{name} failed",
    "composer.label": "Message",
    "composer.placeholder": "Type a message…",
    "composer.offline": "Start a conversation to type a message",
    "composer.send": "Send",
    "control.mute": "Mute",
    "control.unmute": "Unmute",
    "control.interrupt": "Interrupt",
    "latency.last": "Last reply {ms} ms",
    "alert.dismiss": "Dismiss",
    "alert.play": "Play audio",
    "error.no_webrtc": "This browser can't make voice calls (WebRTC is missing). Please use a recent Chrome, Edge, Firefox or Safari.",
    "error.insecure_context": "The microphone only works on secure pages. Open this site over HTTPS (or on localhost).",
    "error.mic_denied": "Microphone access is blocked. Allow the microphone for this site (see the icon in the address bar), then press Start again.",
    "error.no_mic": "No microphone was found. Connect one, then press Start again.",
    "error.mic_busy": "The microphone is in use by another app or could not start. Close other apps that use it and try again.",
    "error.mic_error": "The microphone could not be opened.",
    "error.network": "The server can't be reached. Check your connection and try again.",
    "error.busy": "Too many conversations right now. Please try again in a moment.",
    "error.busy_retry": "Too many conversations right now. Please try again in {s} seconds.",
    "error.unavailable": "The service is temporarily unavailable. Please try again in a moment.",
    "error.shared_state_unavailable":
      "New conversations cannot start right now. Please try again in a minute.",
    "error.unavailable_retry": "The service is temporarily unavailable. Please try again in {s} seconds.",
    "error.backend_unavailable": "The voice model can't be reached right now. Please try again later.",
    "error.backend_error": "The voice model reported a problem.",
    "error.backend_rejected_session": "The voice model refused this conversation's settings (for example its voice).",
    "error.invalid_client_event": "That message could not be sent.",
    "error.too_many_messages": "You are sending messages too quickly. Wait a moment, then send again.",
    "error.not_connected": "Not connected: the message was not sent.",
    "error.autoplay": "The browser blocked the assistant's voice.",
    "error.bad_offer": "Your browser and the server could not agree on how to connect. Reload the page and try again.",
    "error.refused": "The server turned the request down ({code}). Reload the page and try again.",
    "error.link_not_found": "This demo does not exist. Check the link you were given.",
    "error.link_revoked": "This demo has been switched off by its owner.",
    "error.link_expired": "This demo has expired.",
    "error.bad_token": "This demo link is not valid. Ask whoever shared it for a new one.",
    "error.origin_not_allowed": "This demo can't be used on this website.",
    "error.backend_not_configured": "This server has no voice model set up yet.",
    "error.generic": "Something went wrong ({code}).",
    "error.network_blocked": "Your network blocks voice calls: no connection to the server got through within 15 seconds. Try another network (mobile data, for example). If you run this site: set up a TURN relay (VOICE_RELAY_TURN_SECRET and VOICE_RELAY_TURN_URLS) so calls can go over TCP or TLS.",
    "check.run": "Check my connection",
    "check.title": "Connection check",
    "check.running": "Checking the connection…",
    "check.ok": "Calls work from this network, through {path}.",
    "check.ok_rtt": "Calls work from this network, through {path}; round trip {ms} ms.",
    "check.selected": "in use",
    "check.works": "works",
    "check.reachable": "reachable",
    "check.blocked": "blocked",
    "check.off": "not set up",
    "check.untested": "not tested",
    "path.direct-udp": "Direct (UDP)",
    "path.turn-udp": "TURN relay over UDP",
    "path.turn-tcp": "TURN relay over TCP",
    "path.turn-tls": "TURN relay over TLS",
    "debug.title": "Connection details",
    "debug.none": "No connection yet.",
    "debug.thinking": "Model reasoning (not spoken):",
    "debug.path": "Path",
    "debug.local": "This device",
    "debug.remote": "Server",
    "debug.rtt": "Round trip",
    "ended.max_duration": "The conversation reached its time limit. Start again to keep talking.",
    "ended.server_shutdown": "The server is restarting. Please start again in a moment.",
    "ended.server_draining": "The server is being updated. Please start again in a moment.",
    "ended.dropped": "The connection was lost and could not be restored. Press Start to try again.",
  },
  zh: {
    "app.title": "与助手对话",
    "app.subtitle": "点击开始，自然地说话。你可以随时打断。",
    "app.language": "语言",
    "app.model": "模型：{model}",
    "app.noscript": "此页面需要启用 JavaScript 才能与助手对话。",
    "link.share": "分享或嵌入此演示",
    "demos.title": "试试这些角色",
    "link.url": "链接",
    "link.embed": "嵌入到你的网站",
    "call.start": "开始对话",
    "call.end": "结束对话",
    "call.cancel": "取消",
    "state.idle": "准备就绪",
    "state.starting": "正在等待麦克风…",
    "state.connecting": "正在连接…",
    "state.connecting_model": "正在连接语音模型…",
    "state.listening": "正在聆听",
    "state.user_speaking": "你正在说话",
    "state.assistant_speaking": "助手正在说话",
    "state.reconnecting": "连接中断，正在重新连接…",
    "state.ended": "对话已结束",
    "state.muted": "麦克风已静音",
    "meter.you": "你",
    "meter.assistant": "助手",
    "tone.title": "语气",
    "tone.pitch": "音高",
    "tone.pitch_range": "音高范围",
    "tone.loudness": "响度",
    "tone.rate": "语速",
    "tone.duration": "时长",
    "tone.voiced": "发声",
    "tone.syllables": "音节",
    "unit.sps": "音节/秒",
    "conv.title": "对话记录",
    "conv.empty": "你和助手说的话会显示在这里。",
    "conv.interrupted": "已打断",
    "conv.latency": "{ms} 毫秒后回复",
    "conv.sending": "发送中…",
    "conv.speaking": "正在说话…",
    "conv.spoken": "语音消息（{s} 秒）",
    "conv.reconnected": "连接中断后已重新连接。",
    "conv.server_moved": "服务器正在更新：正在把对话转到另一台服务器。",
    "conv.download_txt": "下载文本",
    "conv.download_json": "下载 JSON",
    "conv.txt": "文本",
    "conv.json": "JSON",
    "conv.export_title": "对话导出于 {time}",
    "role.user": "你",
    "role.assistant": "助手",
    "role.note": "提示",
    "role.tool": "工具",
    "tool.web_search.started": "正在联网搜索…",
    "tool.web_search.done": "已联网搜索",
    "tool.web_search.failed": "联网搜索失败",
    "tool.retrieval.started": "正在检索知识库…",
    "tool.retrieval.done": "已检索知识库",
    "tool.retrieval.failed": "知识库检索失败",
    "tool.call.started": "正在调用 {name}…",
    "tool.call.done": "已调用 {name}",
    "tool.call.failed": "调用 {name} 失败",
    "composer.label": "消息",
    "composer.placeholder": "输入消息…",
    "composer.offline": "开始对话后即可输入文字",
    "composer.send": "发送",
    "control.mute": "静音",
    "control.unmute": "取消静音",
    "control.interrupt": "打断",
    "latency.last": "上次回复 {ms} 毫秒",
    "alert.dismiss": "关闭",
    "alert.play": "播放声音",
    "error.no_webrtc": "此浏览器不支持语音通话（缺少 WebRTC）。请使用新版 Chrome、Edge、Firefox 或 Safari。",
    "error.insecure_context": "麦克风只能在安全页面上使用。请通过 HTTPS（或在 localhost 上）打开此网站。",
    "error.mic_denied": "麦克风权限被拒绝。请在浏览器地址栏中允许此网站使用麦克风，然后再次点击开始。",
    "error.no_mic": "未找到麦克风。请连接麦克风后再次点击开始。",
    "error.mic_busy": "麦克风正被其他应用使用或无法启动。请关闭占用麦克风的应用后重试。",
    "error.mic_error": "无法打开麦克风。",
    "error.network": "无法连接到服务器。请检查网络后重试。",
    "error.busy": "当前对话人数过多，请稍后再试。",
    "error.busy_retry": "当前对话人数过多，请在 {s} 秒后重试。",
    "error.unavailable": "服务暂时不可用，请稍后再试。",
    "error.shared_state_unavailable": "暂时无法开始新的对话，请一分钟后再试。",
    "error.unavailable_retry": "服务暂时不可用，请在 {s} 秒后重试。",
    "error.backend_unavailable": "暂时无法连接语音模型，请稍后再试。",
    "error.backend_error": "语音模型报告了一个问题。",
    "error.backend_rejected_session": "语音模型拒绝了本次对话的设置（例如音色）。",
    "error.invalid_client_event": "消息无法发送。",
    "error.too_many_messages": "消息发送过于频繁，请稍候再发送。",
    "error.not_connected": "尚未连接，消息未发送。",
    "error.autoplay": "浏览器阻止了助手的声音播放。",
    "error.bad_offer": "浏览器与服务器无法商定连接方式。请刷新页面后重试。",
    "error.refused": "服务器拒绝了请求（{code}）。请刷新页面后重试。",
    "error.link_not_found": "此演示不存在。请检查你收到的链接。",
    "error.link_revoked": "此演示已被其所有者关闭。",
    "error.link_expired": "此演示已过期。",
    "error.bad_token": "此演示链接无效。请向分享者索取新的链接。",
    "error.origin_not_allowed": "此演示不能在这个网站上使用。",
    "error.backend_not_configured": "此服务器尚未配置语音模型。",
    "error.generic": "出现问题（{code}）。",
    "error.network_blocked": "你的网络阻止了语音通话：15 秒内无法与服务器建立连接。请换一个网络（例如移动数据）再试。如果你是本网站的运营者：请配置 TURN 中继（VOICE_RELAY_TURN_SECRET 和 VOICE_RELAY_TURN_URLS），让通话可以经由 TCP 或 TLS 进行。",
    "check.run": "检查我的网络连接",
    "check.title": "连接检查",
    "check.running": "正在检查连接…",
    "check.ok": "此网络可以通话，经由{path}。",
    "check.ok_rtt": "此网络可以通话，经由{path}；往返时间 {ms} 毫秒。",
    "check.selected": "正在使用",
    "check.works": "可用",
    "check.reachable": "可连接",
    "check.blocked": "被阻止",
    "check.off": "未配置",
    "check.untested": "未测试",
    "path.direct-udp": "直连（UDP）",
    "path.turn-udp": "TURN 中继（UDP）",
    "path.turn-tcp": "TURN 中继（TCP）",
    "path.turn-tls": "TURN 中继（TLS）",
    "debug.title": "连接详情",
    "debug.none": "尚未连接。",
    "debug.thinking": "模型思考过程（不会朗读）：",
    "debug.path": "路径",
    "debug.local": "本设备",
    "debug.remote": "服务器",
    "debug.rtt": "往返时间",
    "ended.max_duration": "对话已达到时长上限。如需继续，请重新开始。",
    "ended.server_shutdown": "服务器正在重启，请稍后重新开始。",
    "ended.server_draining": "服务器正在更新，请稍后重新开始。",
    "ended.dropped": "连接已中断且无法恢复。请点击开始重试。",
  },
};

export const LANGUAGES = { en: { name: "English", tag: "en" }, zh: { name: "中文", tag: "zh-CN" } };
const DEFAULT_STORAGE_KEY = "voice-relay.lang";

export function detectLanguage(preferred = navigator.languages ?? [navigator.language]) {
  for (const tag of preferred) {
    const base = String(tag).toLowerCase().split("-")[0];
    if (Object.hasOwn(STRINGS, base)) return base;
  }
  return "en";
}

export class Translator extends EventTarget {
  // `lang` forces a language; otherwise the visitor's saved choice, then `fallback` (a demo
  // link's language), then the browser's.
  constructor({ storageKey = DEFAULT_STORAGE_KEY, lang, fallback } = {}) {
    super();
    this.storageKey = storageKey;
    this.lang = normalize(lang ?? readStored(storageKey) ?? fallback ?? detectLanguage());
  }

  t(key, params = {}) {
    const template = STRINGS[this.lang][key] ?? STRINGS.en[key] ?? key;
    return template.replace(/\{(\w+)\}/g, (match, name) => (name in params ? String(params[name]) : match));
  }

  // Switches language, remembers it, and re-renders every bound element under `root`.
  setLang(lang, root = document) {
    this.lang = normalize(lang);
    try {
      localStorage.setItem(this.storageKey, this.lang);
    } catch {
      // Storage can be disabled (private browsing); the choice then lasts for this page only.
    }
    this.apply(root);
    this.dispatchEvent(new CustomEvent("change", { detail: { lang: this.lang } }));
  }

  // Sets `el`'s text from `key` and remembers the key for later language switches.
  text(el, key, params) {
    el.dataset.i18n = key;
    if (params) el.dataset.i18nParams = JSON.stringify(params);
    else delete el.dataset.i18nParams;
    el.textContent = this.t(key, params);
    return el;
  }

  // Sets attribute `name` of `el` from `key` (e.g. placeholder, aria-label, title).
  attr(el, name, key, params) {
    const attrs = JSON.parse(el.dataset.i18nAttrs ?? "{}");
    attrs[name] = params ? [key, params] : [key];
    el.dataset.i18nAttrs = JSON.stringify(attrs);
    el.setAttribute(name, this.t(key, params));
    return el;
  }

  apply(root = document) {
    if (root === document || root === document.documentElement) {
      document.documentElement.lang = LANGUAGES[this.lang].tag;
    }
    for (const el of root.querySelectorAll("[data-i18n]")) {
      const params = el.dataset.i18nParams ? JSON.parse(el.dataset.i18nParams) : undefined;
      el.textContent = this.t(el.dataset.i18n, params);
    }
    for (const el of root.querySelectorAll("[data-i18n-attrs]")) {
      for (const [name, [key, params]] of Object.entries(JSON.parse(el.dataset.i18nAttrs))) {
        el.setAttribute(name, this.t(key, params));
      }
    }
  }
}

function normalize(lang) {
  return Object.hasOwn(STRINGS, lang) ? lang : "en";
}

function readStored(storageKey) {
  try {
    return localStorage.getItem(storageKey);
  } catch {
    return null;
  }
}
