// A run's graph as SVG: tasks in layers by their longest path from a root, ordered in
// each layer by the mean position of their neighbours (a few sweeps of the barycenter
// heuristic), which keeps the crossings of typical DAGs low without a layout library.
// A fan-out task is one node with the counts of its instances by state, so a 2,000-item
// fan-out costs the same as one task. A trigger rule other than allSuccess is written
// on the node and on its incoming edges, which are dashed.

import { h, stateInfo } from "./dom.js";

const NODE_W = 188;
const NODE_H = 56;
const GAP_X = 72;
const GAP_Y = 22;
const PAD = 12;
const SWEEPS = 4;
const DEFAULT_RULE = "allSuccess";
const PRECEDENCE = ["failed", "upstream_failed", "running", "launched", "pending", "cleared", "queued", "cancelled", "skipped", "succeeded"];

export function layout(tasks) {
  const byName = new Map(tasks.map((task) => [task.name, task]));
  const rank = new Map();
  const rankOf = (name, seen = new Set()) => {
    if (rank.has(name)) return rank.get(name);
    if (seen.has(name)) return 0; // a cycle cannot be valid; never loop on one
    seen.add(name);
    const deps = (byName.get(name).dependsOn || []).filter((dep) => byName.has(dep));
    const value = deps.length ? 1 + Math.max(...deps.map((dep) => rankOf(dep, seen))) : 0;
    rank.set(name, value);
    return value;
  };
  tasks.forEach((task) => rankOf(task.name));
  const layers = [];
  for (const task of tasks) (layers[rank.get(task.name)] ||= []).push(task.name);
  const children = new Map(tasks.map((task) => [task.name, []]));
  for (const task of tasks) for (const dep of task.dependsOn || []) if (children.has(dep)) children.get(dep).push(task.name);
  const position = new Map();
  const index = () => layers.forEach((layer) => layer.forEach((name, i) => position.set(name, i)));
  index();
  const mean = (names) => (names.length ? names.reduce((sum, n) => sum + position.get(n), 0) / names.length : null);
  for (let sweep = 0; sweep < SWEEPS; sweep++) {
    const down = sweep % 2 === 0;
    const order = down ? layers.slice(1) : layers.slice(0, -1).reverse();
    for (const layer of order) {
      const key = new Map(layer.map((name) => {
        const near = down ? (byName.get(name).dependsOn || []).filter((d) => byName.has(d)) : children.get(name);
        return [name, mean(near) ?? position.get(name)];
      }));
      layer.sort((a, b) => key.get(a) - key.get(b));
      layer.forEach((name, i) => position.set(name, i));
    }
  }
  const tallest = Math.max(...layers.map((layer) => layer.length));
  const nodes = new Map();
  layers.forEach((layer, r) => {
    const offset = ((tallest - layer.length) * (NODE_H + GAP_Y)) / 2;
    layer.forEach((name, i) => nodes.set(name, { x: PAD + r * (NODE_W + GAP_X), y: PAD + offset + i * (NODE_H + GAP_Y) }));
  });
  return {
    nodes,
    width: PAD * 2 + layers.length * NODE_W + Math.max(0, layers.length - 1) * GAP_X,
    height: PAD * 2 + tallest * NODE_H + Math.max(0, tallest - 1) * GAP_Y,
  };
}

// A group of instances (a fan-out, or one instance) is shown by its most telling state.
export function groupState(counts) {
  return PRECEDENCE.find((state) => (counts || {})[state] > 0) || "none";
}

function summary(task) {
  const entries = Object.entries(task.counts || {}).filter(([, n]) => n > 0);
  if (!entries.length) return "not started";
  if (!task.fanOut) return stateInfo(entries[0][0]).label;
  return entries
    .sort((a, b) => PRECEDENCE.indexOf(a[0]) - PRECEDENCE.indexOf(b[0]))
    .map(([state, n]) => `${n} ${stateInfo(state).icon}`)
    .join(" · ");
}

export function renderGraph(tasks, { runId }) {
  if (!tasks.length) return h("p", { class: "muted" }, "No tasks.");
  const { nodes, width, height } = layout(tasks);
  const edges = [];
  for (const task of tasks) {
    const to = nodes.get(task.name);
    const rule = task.triggerRule || DEFAULT_RULE;
    for (const dep of task.dependsOn || []) {
      const from = nodes.get(dep);
      if (!from) continue;
      const x1 = from.x + NODE_W, y1 = from.y + NODE_H / 2, x2 = to.x, y2 = to.y + NODE_H / 2;
      const mid = (x1 + x2) / 2;
      edges.push(h("svg:path", { class: `edge${rule === DEFAULT_RULE ? "" : " rule"}`, d: `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2 - 6},${y2}`, "marker-end": "url(#arrow)", "data-from": dep, "data-to": task.name }));
    }
  }
  const shapes = tasks.map((task) => {
    const { x, y } = nodes.get(task.name);
    const state = groupState(task.counts);
    const rule = task.triggerRule || DEFAULT_RULE;
    const href = task.fanOut ? `#/runs/${runId}?task=${encodeURIComponent(task.name)}` : `#/runs/${runId}/tasks/${encodeURIComponent(task.name)}/0`;
    const label = `${task.name}: ${summary(task)}${rule === DEFAULT_RULE ? "" : `, trigger rule ${rule}`}`;
    return h(
      "svg:a",
      { href, class: `node s-${state}`, "data-task": task.name, "data-state": state, "aria-label": label },
      h("svg:title", {}, label),
      h("svg:rect", { x, y, width: NODE_W, height: NODE_H, rx: 8, class: rule === DEFAULT_RULE ? "" : "rule" }),
      h("svg:text", { x: x + 10, y: y + 22, class: "name" }, `${stateInfo(state).icon} ${clip(task.name, 20)}${task.fanOut ? ` ×${task.instances}` : ""}`),
      h("svg:text", { x: x + 10, y: y + 42, class: "sub" }, clip(summary(task), 22) + (rule === DEFAULT_RULE ? "" : ` · ${rule}`)),
    );
  });
  return h(
    "svg:svg",
    { viewBox: `0 0 ${width} ${height}`, width, height, role: "group", "aria-label": "Run graph", class: "graph" },
    h("svg:defs", {}, h("svg:marker", { id: "arrow", viewBox: "0 0 10 10", refX: 4, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" }, h("svg:path", { d: "M0,0 L10,5 L0,10 z", class: "arrow" }))),
    edges,
    shapes,
  );
}

function clip(text, max) {
  return text.length > max ? text.slice(0, max - 1) + "…" : text;
}
