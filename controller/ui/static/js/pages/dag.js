// One DAG: its header and actions (trigger with typed params, backfill, pause), and its
// runs as a grid of runs × tasks, a page of runs at a time (the server paginates).

import { api } from "../api.js";
import { badge, h, replace, stateInfo, time, unchanged } from "../dom.js";
import { groupState } from "../graph.js";
import { paramsForm, readParams } from "../params.js";
import { pauseButton } from "./dags.js";

const PAGE = 25;

export async function render(main, [name], ctx) {
  const head = h("div", { id: "dag-head" });
  const grid = h("div", { id: "grid" });
  const pager = h("nav", { class: "pager", "aria-label": "Runs pages" });
  const forms = h("div", { class: "forms" });
  replace(main, h("p", { class: "crumbs" }, h("a", { href: "#/" }, "DAGs"), " / ", name), h("h1", {}, name), head, h("h2", {}, "Runs"), grid, pager, forms);

  let before = null;
  const history = [];
  const dagView = async () => {
    const dag = await api.dag(name, ctx.signal);
    replace(head, ...header(dag, ctx));
    if (!forms.childElementCount) replace(forms, triggerForm(dag, ctx), backfillForm(dag, ctx));
  };
  const refresh = async () => {
    const data = await api.grid(name, { limit: PAGE, before }, ctx.signal);
    if (unchanged(grid, data)) return;
    replace(grid, gridView(data));
    replace(
      pager,
      h("button", { type: "button", disabled: !history.length, onclick: () => { before = history.pop() ?? null; refresh(); } }, "← Newer"),
      h("button", { type: "button", disabled: !data.nextBefore, onclick: () => { history.push(before); before = data.nextBefore; refresh(); } }, "Older →"),
    );
  };
  await dagView();
  ctx.refreshDag = dagView;
  await ctx.every(2000, refresh);
}

function header(dag, ctx) {
  const facts = h(
    "dl",
    { class: "facts" },
    h("dt", {}, "State"), h("dd", {}, badge(dag.state)),
    h("dt", {}, "Schedule"), h("dd", {}, dag.schedule ? [h("code", {}, dag.schedule), dag.timezone ? ` (${dag.timezone})` : ""] : "manual only"),
    h("dt", {}, "Next run"), h("dd", {}, time(dag.nextRun)),
    h("dt", {}, "File"), h("dd", {}, h("code", {}, dag.path || "–")),
    dag.description ? [h("dt", {}, "About"), h("dd", {}, dag.description)] : null,
  );
  return [
    facts,
    h("div", { class: "actions" }, pauseButton(dag, ctx, () => ctx.refreshDag())),
    dag.state === "invalid" && dag.error ? h("pre", { class: "errors" }, dag.error) : null,
  ];
}

function triggerForm(dag, ctx) {
  const params = dag.params || {};
  const form = paramsForm(params);
  return h(
    "form",
    {
      class: "action-form",
      id: "trigger-form",
      onsubmit: async (event) => {
        event.preventDefault();
        let values;
        try {
          values = readParams(params, form);
        } catch (error) {
          ctx.flash(error.message, "error");
          return;
        }
        const summary = Object.keys(values).length ? h("pre", {}, JSON.stringify(values, null, 2)) : h("p", {}, "With the default params.");
        const run = await ctx.act(`Trigger ${dag.name}?`, summary, () => api.trigger(dag.name, values), (r) => `Queued run ${r.id}`);
        if (run) location.hash = `#/runs/${run.id}`;
      },
    },
    h("h3", {}, "Trigger a run"),
    form,
    h("button", { type: "submit", class: "primary", "data-action": "trigger" }, "Trigger"),
  );
}

function backfillForm(dag, ctx) {
  const from = h("input", { type: "datetime-local", id: "backfill-from", required: true });
  const to = h("input", { type: "datetime-local", id: "backfill-to", required: true });
  const dry = h("input", { type: "checkbox", id: "backfill-dry", checked: true });
  return h(
    "form",
    {
      class: "action-form",
      id: "backfill-form",
      onsubmit: async (event) => {
        event.preventDefault();
        const body = { from: `${from.value}:00Z`, to: `${to.value}:00Z`, dryRun: dry.checked };
        const title = body.dryRun ? `List the runs a backfill of ${dag.name} would create?` : `Backfill ${dag.name}?`;
        await ctx.act(title, h("p", {}, `From ${body.from} to ${body.to} (UTC).`), () => api.backfill(dag.name, body), (r) => backfillDone(r, body.dryRun));
      },
    },
    h("h3", {}, "Backfill"),
    h("label", { for: "backfill-from" }, "From (UTC)"), from,
    h("label", { for: "backfill-to" }, "To (UTC)"), to,
    h("label", { class: "inline" }, dry, " dry run: only list the runs"),
    h("button", { type: "submit", "data-action": "backfill" }, "Backfill"),
  );
}

function backfillDone(result, dryRun) {
  const runs = (result && result.runs) || [];
  const dates = runs.length ? ` (${runs[0].logicalDate} … ${runs[runs.length - 1].logicalDate})` : "";
  if (dryRun) return `A backfill would cover ${runs.length} date(s)${dates}; ${runs.filter((r) => r.id !== null).length} already have a run`;
  return `Backfill created ${runs.filter((r) => r.created).length} run(s) for ${runs.length} date(s)${dates}`;
}

function gridView(data) {
  if (!data.runs.length) return h("p", { class: "muted" }, "No runs yet.");
  const runs = [...data.runs].reverse(); // oldest left, newest right
  const head = h(
    "tr",
    {},
    h("th", { scope: "col", class: "task-col" }, "Task"),
    runs.map((run) =>
      h(
        "th",
        { scope: "col", class: "run-col" },
        h("a", { href: `#/runs/${run.id}`, "data-run": run.id, title: `run ${run.id} · ${run.logicalDate} · ${run.runType} · ${stateInfo(run.state).label}` },
          h("span", { class: `cell s-${run.state}`, "data-state": run.state }, h("span", { "aria-hidden": "true" }, stateInfo(run.state).icon), h("span", { class: "sr-only" }, `run ${run.id} ${stateInfo(run.state).label}`)),
        ),
      ),
    ),
  );
  const rows = data.tasks.map((task) =>
    h(
      "tr",
      { "data-task": task.name },
      h("th", { scope: "row", class: "task-col" }, task.name, task.fanOut ? h("small", { class: "muted" }, " fan-out") : null),
      runs.map((run) => {
        const counts = (data.cells[run.id] || {})[task.name] || {};
        const state = groupState(counts);
        const total = Object.values(counts).reduce((a, b) => a + b, 0);
        if (state === "none") return h("td", {}, h("span", { class: "cell empty", title: "not created" }, ""));
        const detail = Object.entries(counts).map(([s, n]) => `${n} ${stateInfo(s).label}`).join(", ");
        return h(
          "td",
          {},
          h(
            "a",
            { href: `#/runs/${run.id}`, class: `cell s-${state}`, "data-state": state, "data-run": run.id, title: `${task.name} in run ${run.id}: ${detail}` },
            h("span", { "aria-hidden": "true" }, stateInfo(state).icon),
            total > 1 ? h("span", { class: "count" }, total) : null,
            h("span", { class: "sr-only" }, `${task.name} run ${run.id}: ${detail}`),
          ),
        );
      }),
    ),
  );
  return h(
    "div",
    { class: "table-wrap" },
    h("table", { class: "grid", "aria-label": "Runs by task" }, h("thead", {}, head), h("tbody", {}, rows)),
    h("p", { class: "legend" }, legend()),
  );
}

function legend() {
  return ["succeeded", "failed", "running", "pending", "upstream_failed", "skipped", "cancelled"].map((state) => h("span", { class: "legend-item" }, h("span", { class: `cell s-${state}`, "aria-hidden": "true" }, stateInfo(state).icon), ` ${stateInfo(state).label} `));
}
