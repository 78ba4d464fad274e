// A form for any catalogue task, built from the argument JSON Schema GET /catalogue gives for
// it: numbers with their bounds, strings, enums as selects, booleans as checkboxes, anything
// else as JSON, defaults filled in; a string argument named *_base64 takes a file. The API is
// the one judge of the values (the form does no validation of its own, it has `novalidate`):
// a 422's messages show beside the fields they name.

import { shortId } from "./format.js";
import { send } from "./http.js";
import { resultContent } from "./result.js";
import { errorText, onView } from "./rows.js";
import { showError } from "./status.js";
import { track } from "./tasks.js";

const PRIORITY = {
  type: "integer",
  minimum: 0,
  maximum: 9,
  default: 0,
  title: "Priority",
  description: "0 to 9, higher runs first.",
};

const form = document.querySelector("#task-form");
const taskSelect = document.querySelector("#task-name");
const description = document.querySelector("#task-description");
const argsBox = document.querySelector("#task-args");
const optionsBox = document.querySelector("#task-options");
const formError = document.querySelector("#form-error");
const submitButton = form.querySelector('button[type="submit"]');
const output = document.querySelector("#form-output");

let catalogue = new Map();
/** The API's path of each field ("args.seconds", "priority") -> its field. */
let fields = new Map();
let followedId = null; // the task last submitted from the form, whose end the output shows
// Makes the ids that tie labels and messages to controls (argument names may be any string).
let fieldCount = 0;

// ---- Schemas to fields -----------------------------------------------------------------

/** The schema `schema` stands for: a $ref (or pydantic's allOf around one) looked up. */
function resolve(schema, root) {
  if (schema && Array.isArray(schema.allOf) && schema.allOf.length === 1) {
    return { ...resolve(schema.allOf[0], root), ...schema, allOf: undefined };
  }
  const ref = schema && typeof schema.$ref === "string" && schema.$ref.match(/^#\/\$defs\/(.+)$/);
  if (!ref) return schema || {};
  const target = (root.$defs || {})[ref[1]] || {};
  return { ...target, ...schema, $ref: undefined };
}

/** The schema with an Optional's null taken out: its one other option, defaults kept. */
function withoutNull(schema, root) {
  if (!Array.isArray(schema.anyOf)) return schema;
  const options = schema.anyOf.map((o) => resolve(o, root)).filter((o) => o.type !== "null");
  return options.length === 1 ? { ...options[0], ...schema, anyOf: undefined } : schema;
}

function kindOf(schema) {
  if (Array.isArray(schema.enum) && schema.enum.length) return "enum";
  const options = Array.isArray(schema.anyOf) ? schema.anyOf : [schema];
  const types = options.map((o) => o.type);
  if (types.every((t) => t === "integer")) return "integer";
  if (types.every((t) => t === "integer" || t === "number")) return "number";
  if (types.length === 1 && (types[0] === "boolean" || types[0] === "string")) return types[0];
  return "json";
}

function numberInput(schema, integer) {
  const input = document.createElement("input");
  input.type = "number";
  input.step = integer ? "1" : "any";
  const min = schema.minimum ?? schema.exclusiveMinimum;
  const max = schema.maximum ?? schema.exclusiveMaximum;
  if (Number.isFinite(min)) input.min = String(min);
  if (Number.isFinite(max)) input.max = String(max);
  if (Number.isFinite(schema.default)) input.value = String(schema.default);
  // An empty box leaves the argument out: its default applies, or the API says it is required.
  return { control: input, read: () => (input.value === "" ? undefined : Number(input.value)) };
}

function enumSelect(schema, required) {
  const select = document.createElement("select");
  const options = schema.enum.map((value, i) => new Option(String(value), String(i)));
  if (!required && !("default" in schema)) options.unshift(new Option("–", ""));
  select.append(...options);
  const chosen = schema.enum.findIndex((value) => value === schema.default);
  if (chosen >= 0) select.value = String(chosen);
  return {
    control: select,
    read: () => (select.value === "" ? undefined : schema.enum[Number(select.value)]),
  };
}

function checkbox(schema) {
  const input = document.createElement("input");
  input.type = "checkbox";
  input.checked = schema.default === true;
  return { control: input, read: () => input.checked };
}

function textInput(schema, required) {
  const input = document.createElement("input");
  input.type = "text";
  input.spellcheck = false;
  if (typeof schema.default === "string") input.value = schema.default;
  const optional = !required && !("default" in schema);
  return { control: input, read: () => (optional && input.value === "" ? undefined : input.value) };
}

/** The file's bytes, base64-encoded (a data: URL's payload). */
function base64Of(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.addEventListener("load", () => {
      const url = String(reader.result);
      resolve(url.slice(url.indexOf(",") + 1));
    });
    reader.addEventListener("error", () => reject(reader.error));
    reader.readAsDataURL(file);
  });
}

function filePicker(name) {
  const input = document.createElement("input");
  input.type = "file";
  if (name.startsWith("image")) input.accept = "image/*";
  const read = () => (input.files.length ? base64Of(input.files[0]) : undefined);
  return { control: input, read };
}

/** Any other value as JSON text; text that is not JSON goes as a string, for the API to judge. */
function jsonInput(schema) {
  const area = document.createElement("textarea");
  area.rows = 2;
  area.spellcheck = false;
  area.placeholder = "JSON";
  if ("default" in schema) area.value = JSON.stringify(schema.default);
  const read = () => {
    if (area.value.trim() === "") return undefined;
    try {
      return JSON.parse(area.value);
    } catch {
      return area.value;
    }
  };
  return { control: area, read };
}

function inputFor(name, schema, required) {
  const kind = kindOf(schema);
  if (kind === "string" && name.endsWith("_base64")) return filePicker(name);
  if (kind === "integer" || kind === "number") return numberInput(schema, kind === "integer");
  if (kind === "enum") return enumSelect(schema, required);
  if (kind === "boolean") return checkbox(schema);
  if (kind === "string") return textInput(schema, required);
  return jsonInput(schema);
}

/** A labelled field for the value at the API's `path`, with its hint and its error line. */
function buildField(path, name, schema, required) {
  const { control, read } = inputFor(name, schema, required);
  fieldCount += 1;
  const id = `field-${fieldCount}`;
  control.id = id;
  control.name = name;
  const wrapper = document.createElement("div");
  wrapper.className = "field";
  wrapper.dataset.path = path;
  const label = document.createElement("label");
  label.htmlFor = id;
  label.textContent = schema.title || name;
  if (required) label.dataset.required = "true";
  const hint = document.createElement("small");
  hint.className = "hint";
  hint.id = `${id}-hint`;
  hint.textContent = schema.description || "";
  const error = document.createElement("p");
  error.className = "field-error";
  error.id = `${id}-error`;
  error.dataset.testid = "field-error";
  error.hidden = true;
  control.setAttribute("aria-describedby", `${hint.id} ${error.id}`);
  wrapper.append(label, control, hint, error);
  return { path, wrapper, control, read, error };
}

function argumentFields(schema) {
  const required = new Set(schema.required || []);
  return Object.entries(schema.properties || {}).map(([name, property]) => {
    const resolved = withoutNull(resolve(property, schema), schema);
    return buildField(`args.${name}`, name, resolved, required.has(name));
  });
}

function renderFields() {
  const entry = catalogue.get(taskSelect.value);
  if (!entry) return;
  description.textContent = `${entry.description} (queue ${entry.queue}, time limit ${entry.time_limit_seconds} s)`;
  const args = argumentFields(entry.args_schema || {});
  const priority = buildField("priority", "priority", PRIORITY, false);
  argsBox.replaceChildren(...args.map((f) => f.wrapper));
  optionsBox.replaceChildren(priority.wrapper);
  fields = new Map([...args, priority].map((f) => [f.path, f]));
  clearErrors();
}

// ---- Errors beside their fields ------------------------------------------------------------

function clearErrors() {
  for (const field of fields.values()) {
    field.error.hidden = true;
    field.error.textContent = "";
    field.control.removeAttribute("aria-invalid");
  }
  formError.hidden = true;
  formError.textContent = "";
}

/** The field a problem's path falls in: the path itself, or the field holding it. */
function fieldAt(path) {
  for (let at = path; at; at = at.slice(0, Math.max(at.lastIndexOf("."), 0))) {
    if (fields.has(at)) return fields.get(at);
  }
  return null;
}

function showProblems(problems) {
  for (const { field: path, message } of problems) {
    const field = fieldAt(path);
    const line = field ? field.error : formError;
    // Said beside a field: where in it (a list's item, say), if not the field itself.
    const where = field ? path.slice(field.path.length + 1) : path;
    const text = where ? `${where}: ${message}` : message;
    line.textContent = line.textContent ? `${line.textContent}; ${text}` : text;
    line.hidden = false;
    if (field) field.control.setAttribute("aria-invalid", "true");
  }
  const first = problems.map((p) => fieldAt(p.field)).find(Boolean);
  if (first) first.control.focus();
}

// ---- Submit and follow ---------------------------------------------------------------------

async function body() {
  const entry = catalogue.get(taskSelect.value);
  const submit = { name: entry.name, args: {} };
  for (const field of fields.values()) {
    const value = await field.read();
    if (value === undefined) continue;
    if (field.path === "priority") submit.priority = value;
    else submit.args[field.control.name] = value;
  }
  return submit;
}

function showOutput(view) {
  const line = document.createElement("p");
  line.textContent = `Task ${shortId(view.task_id)} (${view.name}): ${view.state}`;
  const parts = [line];
  if (view.state === "SUCCESS") {
    parts.push(resultContent(view));
  } else if (view.error) {
    parts.push(errorText(view.error));
  }
  output.replaceChildren(...parts);
  output.dataset.state = view.state;
}

async function submitForm(event) {
  event.preventDefault();
  clearErrors();
  submitButton.disabled = true;
  try {
    const response = await send("/tasks", { method: "POST", body: await body() });
    const submitted = await response.json();
    followedId = submitted.task_id;
    showOutput({ ...submitted, name: taskSelect.value });
    track(submitted);
  } catch (err) {
    if (err.status === 422 && err.fields && err.fields.length) showProblems(err.fields);
    else showError("Could not submit the task", err);
  } finally {
    submitButton.disabled = false;
  }
}

/** Offer the catalogue's tasks, the first one's fields shown. */
export function setCatalogue(entries) {
  catalogue = new Map(entries.map((entry) => [entry.name, entry]));
  taskSelect.replaceChildren(...entries.map((e) => new Option(e.name, e.name)));
  renderFields();
  submitButton.disabled = entries.length === 0;
}

export function startForm() {
  taskSelect.addEventListener("change", renderFields);
  form.addEventListener("submit", submitForm);
  onView((view) => {
    if (view.task_id === followedId) showOutput(view);
  });
}
