// One run: its facts and commit, cancel and retry, the graph coloured by state (polled
// twice a second while the run is open), its task instances and its event history.

import { api } from "../api.js";
import { badge, commit, duration, h, hashQuery, replace, table, time, unchanged } from "../dom.js";
import { renderGraph } from "../graph.js";

const OPEN_POLL_MS = 500;
const DONE_POLL_MS = 3000;
const INSTANCES_PAGE = 100;
const FINISHED = new Set(["succeeded", "failed", "cancelled"]);

export async function render(main, [id], ctx) {
  const head = h("div", { id: "run-head" });
  const graph = h("div", { id: "graph", class: "graph-wrap" });
  const instances = h("div", { id: "instances" });
  const events = h("div", { id: "events" });
  const title = h("h1", {}, `Run ${id}`);
  const crumbs = h("p", { class: "crumbs" }, h("a", { href: "#/" }, "DAGs"));
  replace(main, crumbs, title, head, h("h2", {}, "Graph"), graph, instances, h("h2", {}, "Events"), events);

  const filter = hashQuery().get("task");
  let offset = 0;
  let finished = false;
  let lastState = null;
  const refresh = async () => {
    // The run first, then its tasks: a run is finished only after its tasks are, so a
    // finished header never shows over a graph read before the last task ended.
    const run = await api.run(id, ctx.signal);
    const shape = await api.graph(id, ctx.signal);
    replace(crumbs, h("a", { href: "#/" }, "DAGs"), " / ", h("a", { href: `#/dags/${encodeURIComponent(run.dag)}` }, run.dag), ` / run ${run.id}`);
    if (run.state !== lastState) replace(head, ...header(run, ctx, refresh));
    lastState = run.state;
    if (!unchanged(graph, shape)) replace(graph, renderGraph(shape.tasks, { runId: run.id }));
    const page = await api.tasks(id, { task: filter, limit: INSTANCES_PAGE, offset }, ctx.signal);
    if (!unchanged(instances, [page, offset])) {
      replace(instances, ...instanceView(run, page, filter, offset, (next) => { offset = next; refresh(); }));
    }
    const history = (await api.events(id, ctx.signal)).events;
    if (!unchanged(events, history)) replace(events, eventView(history));
    finished = FINISHED.has(run.state);
  };
  let timer = null;
  const loop = async () => {
    try {
      await refresh();
    } catch (error) {
      const text = ctx.describe(error);
      if (text && !ctx.signal.aborted) ctx.flash(text, "error");
    }
    if (!ctx.signal.aborted) timer = setTimeout(loop, finished ? DONE_POLL_MS : OPEN_POLL_MS);
  };
  ctx.signal.addEventListener("abort", () => clearTimeout(timer));
  await loop();
}

function header(run, ctx, refresh) {
  const open = !FINISHED.has(run.state);
  const failed = run.state === "failed" || run.state === "cancelled";
  return [
    h(
      "dl",
      { class: "facts" },
      h("dt", {}, "State"), h("dd", { id: "run-state", "data-state": run.state }, badge(run.state)),
      h("dt", {}, "DAG"), h("dd", {}, h("a", { href: `#/dags/${encodeURIComponent(run.dag)}` }, run.dag)),
      h("dt", {}, "Logical date"), h("dd", {}, time(run.logicalDate)),
      h("dt", {}, "Type"), h("dd", {}, run.type),
      h("dt", {}, "Commit"), h("dd", { id: "run-commit" }, commit(run.revision, run.commitUrl)),
      h("dt", {}, "Started"), h("dd", {}, time(run.startedAt)),
      h("dt", {}, "Finished"), h("dd", {}, time(run.finishedAt)),
      h("dt", {}, "Duration"), h("dd", {}, duration(run.startedAt, run.finishedAt)),
      h("dt", {}, "Params"), h("dd", {}, Object.keys(run.params || {}).length ? h("code", {}, JSON.stringify(run.params)) : "–"),
    ),
    h(
      "div",
      { class: "actions" },
      open
        ? h("button", { type: "button", class: "danger", "data-action": "cancel", onclick: () => ctx.act(`Cancel run ${run.id}?`, "Running pods are deleted (their logs are kept) and nothing new starts.", () => api.cancel(run.id), (r) => r.message).then((r) => r && refresh()) }, "Cancel run")
        : null,
      failed
        ? h("button", { type: "button", "data-action": "retry", onclick: () => ctx.act(`Retry the failed tasks of run ${run.id}?`, "Failed and upstream-failed task instances run again, on the run's own commit.", () => api.retry(run.id), (r) => r.message).then((r) => r && refresh()) }, "Retry failed")
        : null,
    ),
  ];
}

function instanceView(run, page, filter, offset, go) {
  const rows = page.tasks.map((ti) =>
    h(
      "tr",
      { "data-task": ti.task, "data-item": ti.itemIndex },
      h("th", { scope: "row" }, h("a", { href: `#/runs/${run.id}/tasks/${encodeURIComponent(ti.task)}/${ti.itemIndex}` }, ti.task, ti.item !== null && ti.item !== undefined ? ` [${ti.itemIndex}] ${typeof ti.item === "string" ? ti.item : JSON.stringify(ti.item)}` : "")),
      h("td", {}, badge(ti.state)),
      h("td", {}, ti.try),
      h("td", {}, duration(ti.startedAt, ti.finishedAt)),
      h("td", { class: "detail" }, detail(ti)),
    ),
  );
  const total = page.total ?? page.tasks.length;
  return [
    h("h2", {}, filter ? `Task instances of ${filter}` : "Task instances"),
    filter ? h("p", {}, h("a", { href: `#/runs/${run.id}` }, "Show every task")) : null,
    table(["Task", "State", "Try", "Duration", "Detail"], rows, { class: "instances" }),
    total > INSTANCES_PAGE
      ? h(
          "nav",
          { class: "pager", "aria-label": "Task instance pages" },
          h("button", { type: "button", disabled: offset === 0, onclick: () => go(Math.max(0, offset - INSTANCES_PAGE)) }, "← Previous"),
          ` ${offset + 1}–${Math.min(total, offset + INSTANCES_PAGE)} of ${total} `,
          h("button", { type: "button", disabled: offset + INSTANCES_PAGE >= total, onclick: () => go(offset + INSTANCES_PAGE) }, "Next →"),
        )
      : null,
  ];
}

export function detail(ti) {
  const by = ti.setBy ? ` (set by ${ti.setBy})` : "";
  if (ti.state === "failed") {
    const kind = ti.failureKind === "infra" ? "infrastructure failure" : ti.failureKind === "task" ? "task failure" : "failure";
    return [kind, ti.reason ? `: ${ti.reason}` : "", ti.message ? ` — ${ti.message}` : "", by].join("");
  }
  if (ti.result !== null && ti.result !== undefined) return `result ${ti.result}${by}`;
  if (ti.state === "pending" && ti.notBefore) return `retry at ${ti.notBefore}`;
  return by.trim();
}

function eventView(events) {
  if (!events.length) return h("p", { class: "muted" }, "No events.");
  const rows = events.map((event) =>
    h(
      "tr",
      { "data-kind": event.kind },
      h("td", {}, time(event.at)),
      h("td", {}, h("code", {}, event.kind)),
      h("td", {}, event.task ? `${event.task}${event.itemIndex ? `[${event.itemIndex}]` : ""}${event.try ? ` try ${event.try}` : ""}` : ""),
      h("td", {}, event.message),
    ),
  );
  return table(["When", "Kind", "Task", "What"], rows, { class: "events" });
}
