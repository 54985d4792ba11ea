// One task instance: every try with its reason (infrastructure or task failure), result
// and pod, the chosen try's log (followed live while it runs, from the log store after),
// and marking it succeeded or failed.

import { api } from "../api.js";
import { badge, duration, h, replace, table, time, unchanged } from "../dom.js";
import { detail } from "./run.js";

const POLL_MS = 1000;
const FINISHED = new Set(["succeeded", "failed", "skipped", "upstream_failed", "cancelled"]);

export async function render(main, [runId, taskName, item], ctx) {
  const tries = h("div", { id: "tries" });
  const actions = h("div", { class: "actions" });
  const logTitle = h("h2", {}, "Log");
  const logStatus = h("p", { id: "log-status", class: "muted", role: "status" });
  const log = h("pre", { id: "log", class: "log", tabindex: "0", "aria-label": "Task log" });
  replace(
    main,
    h("p", { class: "crumbs" }, h("a", { href: "#/" }, "DAGs"), " / ", h("a", { href: `#/runs/${runId}` }, `run ${runId}`), ` / ${taskName}`),
    h("h1", {}, `${taskName}`, item !== "0" ? ` [${item}]` : ""),
    actions,
    h("h2", {}, "Tries"),
    tries,
    logTitle,
    logStatus,
    log,
  );

  let chosen = null; // try number the user picked; null follows the latest
  let streaming = null; // {key, abort, ended}
  const startLog = (ti) => {
    const live = !FINISHED.has(ti.state);
    const key = `${ti.try}:${live}:${Boolean(ti.pod)}`;
    // A follow that ended while the try still runs began before its pod could be read
    // (or was cut): follow again, from the start of the log, in place of what it showed.
    if (streaming && streaming.key === key && !(live && streaming.ended)) return;
    if (streaming) streaming.abort.abort();
    const abort = new AbortController();
    ctx.signal.addEventListener("abort", () => abort.abort());
    const current = { key, abort, ended: false };
    streaming = current;
    replace(logTitle, `Log of try ${ti.try}`);
    log.textContent = "";
    if (!ti.pod && live) {
      logStatus.textContent = `try ${ti.try} is ${ti.state}: no pod yet`;
      return;
    }
    logStatus.textContent = live ? "following the pod's log…" : "from the log store";
    log.dataset.live = String(live);
    api
      .streamLog(runId, taskName, item, ti.try, {
        follow: live,
        signal: abort.signal,
        onChunk: (text) => {
          const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
          log.append(text);
          if (atEnd) log.scrollTop = log.scrollHeight;
        },
      })
      .then(() => {
        current.ended = true;
        if (abort.signal.aborted) return;
        logStatus.textContent = live ? "the log stream ended" : "complete";
        log.dataset.live = "false";
      })
      .catch((error) => {
        if (abort.signal.aborted) return;
        logStatus.textContent = ctx.describe(error);
        streaming = null; // try again on the next poll: the container may not have started
      });
  };

  await ctx.every(POLL_MS, async () => {
    const data = await api.tries(runId, taskName, item, ctx.signal);
    const all = data.tries;
    if (!all.length) {
      replace(tries, h("p", { class: "muted" }, "No such task instance."));
      return;
    }
    const latest = all[all.length - 1];
    const current = all.find((ti) => ti.try === chosen) || latest;
    const choose = (number) => {
      chosen = number;
      tries.dataset.rendered = ""; // show the new choice at once
      startLog(all.find((ti) => ti.try === number));
    };
    if (!unchanged(tries, [all, current.try])) replace(tries, triesView(all, current, choose));
    if (!unchanged(actions, latest.state)) replace(actions, ...markButtons(latest, ctx, runId, taskName, item));
    startLog(current);
  });
}

function triesView(all, current, choose) {
  const rows = all.map((ti) =>
    h(
      "tr",
      { "data-try": ti.try, class: ti.try === current.try ? "chosen" : "" },
      h("th", { scope: "row" }, h("button", { type: "button", class: "link", "aria-pressed": String(ti.try === current.try), onclick: () => choose(ti.try) }, `try ${ti.try}`)),
      h("td", {}, badge(ti.state)),
      h("td", {}, ti.failureKind ? (ti.failureKind === "infra" ? "infrastructure" : "task") : "–"),
      h("td", {}, ti.exitCode ?? "–"),
      h("td", {}, ti.pod ? h("code", {}, ti.pod) : "–"),
      h("td", {}, time(ti.startedAt)),
      h("td", {}, duration(ti.startedAt, ti.finishedAt)),
      h("td", { class: "detail" }, detail(ti)),
    ),
  );
  return table(["Try", "State", "Failure", "Exit", "Pod", "Started", "Took", "Reason / result"], rows, { class: "tries" });
}

function markButtons(latest, ctx, runId, taskName, item) {
  if (!FINISHED.has(latest.state)) return [];
  const result = h("input", { type: "text", id: "mark-result", placeholder: "result (optional)" });
  return [
    h("label", { for: "mark-result", class: "sr-only" }, "Result to record"),
    result,
    h("button", { type: "button", "data-action": "mark-succeeded", onclick: () => ctx.act(`Mark ${taskName} succeeded?`, "Downstream tasks then proceed as if it had succeeded.", () => api.mark(runId, taskName, item, { state: "succeeded", result: result.value || null }), (r) => r.message) }, "Mark succeeded"),
    h("button", { type: "button", "data-action": "mark-failed", onclick: () => ctx.act(`Mark ${taskName} failed?`, "Downstream tasks then proceed as if it had failed.", () => api.mark(runId, taskName, item, { state: "failed" }), (r) => r.message) }, "Mark failed"),
  ];
}
