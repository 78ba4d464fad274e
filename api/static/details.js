// One task's details, opened from its row: what it was given, when it waited and ran, where,
// how often, and how it ended. It follows the row's view, so it stays current while open.

import { formatDuration, formatTime, formatValue, shortId } from "./format.js";
import { getJson, taskPath } from "./http.js";
import { resultContent } from "./result.js";
import { errorText, onView, rows, tracebackDetails } from "./rows.js";

const panel = document.querySelector("#task-details");
const heading = document.querySelector("#details-heading");
const idCode = panel.querySelector('[data-field="id"]');
const list = document.querySelector("#details-list");
const argsList = document.querySelector("#details-args");
const outcome = document.querySelector("#details-outcome");

let shownId = null;

function worker(view) {
  if (!view.worker) return "";
  return view.worker_pid ? `${view.worker} (pid ${view.worker_pid})` : view.worker;
}

/** [field, label, text] for each line of the list; empty texts are left out. */
function facts(view) {
  return [
    ["name", "Name", view.name],
    ["state", "State", view.state],
    ["queue", "Queue", `${view.queue}, priority ${view.priority}`],
    ["submitted", "Submitted", formatTime(view.submitted_at)],
    ["due", "Due", formatTime(view.due_at)],
    ["started", "Started", formatTime(view.started_at)],
    ["finished", "Finished", formatTime(view.finished_at)],
    // From when it could run (a countdown's end) to its (latest) start.
    ["waited", "Waited", formatDuration(view.due_at || view.submitted_at, view.started_at)],
    ["ran", "Ran", formatDuration(view.started_at, view.finished_at)],
    ["attempts", "Attempts", String(view.attempts)],
    ["retries", "Retries", String(view.retries)],
    ["worker", "Worker", worker(view)],
    ["schedule", "Schedule", view.schedule || ""],
    ["workflow", "Workflow", view.workflow || ""],
  ];
}

function definitions(entries) {
  return entries.flatMap(([field, label, text]) => {
    if (!text) return [];
    const dt = document.createElement("dt");
    dt.textContent = label;
    const dd = document.createElement("dd");
    dd.dataset.field = field;
    dd.textContent = text;
    return [dt, dd];
  });
}

function showOutcome(view) {
  outcome.replaceChildren();
  outcome.dataset.kind = view.error ? "error" : "";
  if (view.error) {
    outcome.textContent = `Error: ${errorText(view.error)}`;
    if (view.error.traceback) outcome.append(tracebackDetails(view.error));
  } else if (view.state === "SUCCESS") {
    outcome.append("Result: ", resultContent(view));
  }
}

function render(view) {
  list.replaceChildren(...definitions(facts(view)));
  showOutcome(view);
}

function clear() {
  list.replaceChildren();
  outcome.replaceChildren();
}

async function loadArgs(id) {
  argsList.replaceChildren();
  argsList.dataset.loaded = "";
  try {
    const { args } = await getJson(`${taskPath(id)}/args`);
    if (id !== shownId) return;
    const entries = args
      ? Object.entries(args).map(([name, value]) => [name, name, formatValue(value)])
      : [["none", "None kept", "the record of a success keeps its result, not its arguments"]];
    argsList.replaceChildren(...definitions(entries));
    argsList.dataset.loaded = "true";
  } catch (err) {
    if (id !== shownId) return;
    argsList.replaceChildren(...definitions([["error", "Not available", err.message]]));
    argsList.dataset.loaded = "error";
  }
}

export function showDetails(id) {
  shownId = id;
  idCode.textContent = shortId(id);
  idCode.title = id;
  panel.dataset.taskId = id;
  const row = rows.get(id);
  if (row && row.view) render(row.view);
  else clear(); // a task just submitted: its first view comes with the stream
  panel.hidden = false;
  heading.focus();
  loadArgs(id);
}

export function startDetails() {
  onView((view) => {
    if (view.task_id === shownId) render(view);
  });
  document.querySelector("#details-close").addEventListener("click", () => {
    shownId = null;
    panel.hidden = true;
  });
}
