// The page shell: a hash router, the token form, messages, confirmation and polling.
// Each page module exports render(main, params, ctx); ctx lets it poll and act, and
// everything it started stops when the user navigates away (ctx.signal aborts).

import { ApiError, token } from "./api.js";
import { h, replace } from "./dom.js";
import * as dags from "./pages/dags.js";
import * as dag from "./pages/dag.js";
import * as run from "./pages/run.js";
import * as task from "./pages/task.js";

const ROUTES = [
  [/^\/?$/, dags],
  [/^\/dags\/([^/]+)$/, dag],
  [/^\/runs\/(\d+)$/, run],
  [/^\/runs\/(\d+)\/tasks\/([^/]+)\/(\d+)$/, task],
];

let current = null;

function flash(message, kind = "info") {
  const box = document.getElementById("flash");
  replace(box, message ? h("p", { class: `flash ${kind}` }, message) : null);
}

function confirmAction(title, ...body) {
  const dialog = document.getElementById("confirm");
  replace(document.getElementById("confirm-title"), title);
  replace(document.getElementById("confirm-body"), ...body);
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
    document.getElementById("confirm-yes").focus();
  });
}

function describe(error) {
  if (error instanceof ApiError) {
    if (error.status === 401 || error.status === 403) {
      return `Refused (${error.status}): ${error.message}${token.get() ? "" : " — save the API token in the header"}`;
    }
    return `Failed (${error.status}): ${error.message}`;
  }
  if (error && error.name === "AbortError") return null;
  return `Failed: ${error && error.message ? error.message : error}`;
}

function context(controller) {
  return {
    signal: controller.signal,
    flash,
    // Runs fn now and every ms until navigation; a slow answer is never overlapped.
    every(ms, fn) {
      let timer = null;
      const tick = async () => {
        try {
          await fn();
        } catch (error) {
          const text = describe(error);
          if (text && !controller.signal.aborted) flash(text, "error");
        }
        if (!controller.signal.aborted) timer = setTimeout(tick, ms);
      };
      controller.signal.addEventListener("abort", () => clearTimeout(timer));
      return tick();
    },
    // Asks first, then acts; the server's answer (refusal included) is shown either way.
    async act(title, body, action, done) {
      if (!(await confirmAction(title, ...[].concat(body)))) return null;
      try {
        const result = await action();
        flash(typeof done === "function" ? done(result) : done, "ok");
        return result;
      } catch (error) {
        flash(describe(error), "error");
        return null;
      }
    },
    describe,
  };
}

async function route() {
  if (current) current.abort();
  current = new AbortController();
  const path = decodeURIComponent(location.hash.replace(/^#/, "").split("?")[0]) || "/";
  const main = document.getElementById("main");
  flash("");
  for (const [pattern, page] of ROUTES) {
    const match = path.match(pattern);
    if (!match) continue;
    try {
      await page.render(main, match.slice(1), context(current));
    } catch (error) {
      const text = describe(error);
      if (text) replace(main, h("p", { class: "flash error" }, text));
    }
    return;
  }
  replace(main, h("h1", {}, "Not found"), h("p", {}, h("a", { href: "#/" }, "Back to the DAGs")));
}

function setupToken() {
  const form = document.getElementById("token-form");
  const input = document.getElementById("token-input");
  const status = document.getElementById("token-status");
  const show = () => {
    status.textContent = token.get() ? "token set" : "read-only";
    document.body.classList.toggle("read-only", !token.get());
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    token.set(input.value.trim());
    input.value = "";
    show();
  });
  document.getElementById("token-clear").addEventListener("click", () => {
    token.set("");
    show();
  });
  show();
}

setupToken();
window.addEventListener("hashchange", route);
route();
