// Small DOM helpers. Every piece of data goes in through textContent or an attribute,
// never through innerHTML, so a DAG name, an error or a log line cannot become markup.

export function h(tag, attrs = {}, ...children) {
  const svg = tag.startsWith("svg:");
  const el = svg
    ? document.createElementNS("http://www.w3.org/2000/svg", tag.slice(4))
    : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.setAttribute("class", value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

// Colour is never the only carrier of a state: each has an icon and its name as text.
export const STATES = {
  queued: { icon: "◷", label: "queued" },
  pending: { icon: "◷", label: "pending" },
  launched: { icon: "◔", label: "launched" },
  running: { icon: "▶", label: "running" },
  succeeded: { icon: "✓", label: "succeeded" },
  failed: { icon: "✗", label: "failed" },
  upstream_failed: { icon: "⚠", label: "upstream failed" },
  skipped: { icon: "↷", label: "skipped" },
  cancelled: { icon: "⊘", label: "cancelled" },
  cleared: { icon: "↺", label: "cleared for retry" },
  active: { icon: "●", label: "active" },
  paused: { icon: "❚❚", label: "paused" },
  invalid: { icon: "⚠", label: "invalid" },
  deleted: { icon: "⌫", label: "deleted" },
};

export function stateInfo(state) {
  return STATES[state] || { icon: "?", label: state || "unknown" };
}

export function badge(state, { short = false } = {}) {
  const info = stateInfo(state);
  return h(
    "span",
    { class: `badge s-${state}`, "data-state": state, title: info.label },
    h("span", { class: "icon", "aria-hidden": "true" }, info.icon),
    short ? h("span", { class: "sr-only" }, info.label) : ` ${info.label}`,
  );
}

export function time(value) {
  if (!value) return "–";
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  return h("time", { datetime: value, title: value }, date.toISOString().slice(0, 19).replace("T", " ") + "Z");
}

export function duration(start, end) {
  if (!start) return "–";
  const ms = (end ? new Date(end) : new Date()) - new Date(start);
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}

export function shortRevision(revision) {
  return revision ? revision.slice(0, 12) : "–";
}

export function commit(revision, url) {
  const text = h("code", {}, shortRevision(revision));
  if (!revision) return text;
  return url ? h("a", { href: url, rel: "noopener noreferrer", title: revision }, text) : h("span", { title: revision }, text);
}

export function table(headers, rows, attrs = {}) {
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      attrs,
      h("thead", {}, h("tr", {}, headers.map((name) => h("th", { scope: "col" }, name)))),
      h("tbody", {}, rows),
    ),
  );
}

export function section(title, ...children) {
  return h("section", {}, h("h2", {}, title), ...children);
}

export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// The query part of the hash route (#/runs/7?task=load), as URLSearchParams.
export function hashQuery() {
  return new URLSearchParams(location.hash.split("?")[1] || "");
}

// Polling pages call this before re-rendering a part: when the data behind it has not
// changed, the part is left alone, so focus, a half-typed field and scroll positions
// survive every refresh.
export function unchanged(el, data) {
  const key = JSON.stringify(data);
  if (el.dataset.rendered === key) return true;
  el.dataset.rendered = key;
  return false;
}
