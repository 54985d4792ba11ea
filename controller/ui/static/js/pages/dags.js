// The DAG list: state, schedule, last and next run, and why an invalid DAG is invalid.

import { api } from "../api.js";
import { badge, h, replace, shortRevision, table, time, unchanged } from "../dom.js";

export async function render(main, _params, ctx) {
  const body = h("div", { id: "dag-list" });
  replace(main, h("h1", {}, "DAGs"), body);
  await ctx.every(2000, async () => {
    const data = await api.dags(ctx.signal);
    if (!unchanged(body, data)) replace(body, ...view(data.dags, ctx));
  });
}

function view(dags, ctx) {
  if (!dags.length) return [h("p", { class: "muted" }, "No DAGs yet: the controller has not synced a commit with valid DAG files.")];
  const rows = dags.map((dag) =>
    h(
      "tr",
      { "data-dag": dag.name },
      h("th", { scope: "row" }, h("a", { href: `#/dags/${encodeURIComponent(dag.name)}` }, dag.name)),
      h("td", {}, badge(dag.state), dag.pausedBy && dag.state === "paused" ? h("small", { class: "muted" }, ` by ${dag.pausedBy}`) : null),
      h("td", {}, dag.schedule ? h("code", {}, dag.schedule) : h("span", { class: "muted" }, "manual")),
      h("td", {}, lastRun(dag.lastRun)),
      h("td", {}, time(dag.nextRun)),
      h("td", {}, pauseButton(dag, ctx)),
    ),
  );
  const invalid = dags.filter((dag) => dag.state === "invalid" && dag.error);
  return [
    table(["DAG", "State", "Schedule", "Last run", "Next run", ""], rows, { class: "dags" }),
    invalid.length ? h("h2", {}, "Invalid DAGs") : null,
    invalid.map((dag) =>
      h(
        "div",
        { class: "problem", "data-invalid": dag.name },
        h(
          "p",
          {},
          h("strong", {}, dag.name),
          ` is invalid at `,
          h("code", {}, shortRevision(dag.revision)),
          " — ",
          dag.runningRevision
            ? ["the version from ", h("code", {}, shortRevision(dag.runningRevision)), " keeps running"]
            : "no valid version yet, nothing runs",
        ),
        h("pre", { class: "errors" }, dag.error),
      ),
    ),
  ];
}

function lastRun(run) {
  if (!run) return h("span", { class: "muted" }, "none");
  return h("a", { href: `#/runs/${run.id}` }, badge(run.state, { short: true }), " ", time(run.logicalDate));
}

export function pauseButton(dag, ctx, after) {
  if (dag.state === "deleted" || dag.state === "invalid" && !dag.runningRevision) return null;
  const paused = dag.paused ?? dag.state === "paused";
  const verb = paused ? "Unpause" : "Pause";
  return h(
    "button",
    {
      type: "button",
      class: "action",
      "data-action": verb.toLowerCase(),
      onclick: async () => {
        const done = await ctx.act(`${verb} ${dag.name}?`, paused ? "New runs will be scheduled again." : "No new runs will start until it is unpaused; running ones go on.", () => api.pause(dag.name, !paused), `${dag.name} ${paused ? "unpaused" : "paused"}`);
        if (done && after) after();
      },
    },
    verb,
  );
}
