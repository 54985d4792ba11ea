// A form from a DAG's params schema ({name: {type, default, enum, description}}), and
// reading it back as typed values, so a trigger sends 200, not "200".

import { h } from "./dom.js";

export function paramsForm(params) {
  const names = Object.keys(params);
  if (!names.length) return h("p", { class: "muted" }, "This DAG declares no params.");
  return h("div", { class: "params" }, names.map((name) => field(name, params[name] || {})));
}

function field(name, schema) {
  const id = `param-${name}`;
  const value = schema.default;
  let input;
  if (Array.isArray(schema.enum)) {
    input = h("select", { id, name }, schema.enum.map((option) => h("option", { value: JSON.stringify(option), selected: option === value }, String(option))));
  } else if (schema.type === "boolean") {
    input = h("input", { id, name, type: "checkbox", checked: value === true });
  } else if (schema.type === "integer" || schema.type === "number") {
    input = h("input", { id, name, type: "number", step: schema.type === "integer" ? "1" : "any", value: value ?? "" });
  } else if (schema.type === "array" || schema.type === "object") {
    input = h("textarea", { id, name, rows: 2, spellcheck: "false" }, value === undefined ? "" : JSON.stringify(value));
  } else {
    input = h("input", { id, name, type: "text", value: value ?? "" });
  }
  input.dataset.type = schema.type || "string";
  return h(
    "div",
    { class: "field" },
    h("label", { for: id }, name, h("span", { class: "muted" }, ` (${schema.type || "string"})`)),
    input,
    schema.description ? h("small", { class: "muted" }, schema.description) : null,
  );
}

export function readParams(params, form) {
  const values = {};
  for (const name of Object.keys(params)) {
    const input = form.querySelector(`#${CSS.escape(`param-${name}`)}`);
    if (!input) continue;
    const type = input.dataset.type;
    if (input.tagName === "SELECT") values[name] = JSON.parse(input.value);
    else if (type === "boolean") values[name] = input.checked;
    else if (type === "integer" || type === "number") {
      if (input.value === "") continue;
      const number = Number(input.value);
      if (!Number.isFinite(number) || (type === "integer" && !Number.isInteger(number))) {
        throw new Error(`param ${name} must be ${type === "integer" ? "an integer" : "a number"}`);
      }
      values[name] = number;
    } else if (type === "array" || type === "object") {
      if (!input.value.trim()) continue;
      try {
        values[name] = JSON.parse(input.value);
      } catch {
        throw new Error(`param ${name} must be JSON (${type})`);
      }
    } else values[name] = input.value;
  }
  return values;
}
