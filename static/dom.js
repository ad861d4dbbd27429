// A tiny element builder: h("button", { class: "x", type: "button", onclick }, "text", child).

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else if (name === "dataset") {
      Object.assign(el.dataset, value);
    } else {
      el.setAttribute(name, value === true ? "" : String(value));
    }
  }
  el.append(...children.flat().filter((child) => child !== null && child !== undefined && child !== false));
  return el;
}

// An inline SVG icon from a path list (24x24 viewBox, stroked), hidden from screen readers.
export function icon(paths) {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  svg.classList.add("icon");
  for (const d of paths) {
    const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
    path.setAttribute("d", d);
    svg.append(path);
  }
  return svg;
}

export const ICONS = {
  mic: ["M12 3a3 3 0 0 0-3 3v6a3 3 0 0 0 6 0V6a3 3 0 0 0-3-3z", "M19 11a7 7 0 0 1-14 0", "M12 18v3"],
  micOff: [
    "M3 3l18 18",
    "M9 9v3a3 3 0 0 0 5.1 2.1",
    "M15 10V6a3 3 0 0 0-5.7-1.3",
    "M19 11a7 7 0 0 1-1.2 3.9",
    "M5 11a7 7 0 0 0 10.6 6",
    "M12 18v3",
  ],
  stop: ["M7 7h10v10H7z"],
  close: ["M6 6l12 12", "M18 6L6 18"],
  hand: [
    "M8 13V5.5a1.5 1.5 0 0 1 3 0V12",
    "M11 11V4.5a1.5 1.5 0 0 1 3 0V11",
    "M14 11V6.5a1.5 1.5 0 0 1 3 0V14a7 7 0 0 1-7 7h-.5a6 6 0 0 1-5-2.7L3 15.5a1.5 1.5 0 0 1 2.4-1.8L8 16",
  ],
  send: ["M4 12l16-8-6 16-2.5-6.5L4 12z"],
  download: ["M12 4v11", "M7 10l5 5 5-5", "M5 20h14"],
};
