// The task table's rows: one per task, made and updated from task views (GET /tasks/{id}, the
// listing, the event stream). Server data reaches the DOM as text and attributes only.

import { formatNumber, formatTime, shortId } from "./format.js";
import { resultContent } from "./result.js";

const TERMINAL = new Set(["SUCCESS", "FAILURE", "REVOKED"]);

export const tasksBody = document.querySelector("#tasks-body");
const tasksEmpty = document.querySelector("#tasks-empty");

/** id -> {id, tr, cells, bar, count, cancel, view, done}, in the order the rows came */
export const rows = new Map();
const viewListeners = new Set();

/** Call `listener(view)` after each view applied to a row (the details and the form's output
 * follow their task this way, with no request of their own). */
export function onView(listener) {
  viewListeners.add(listener);
}

function button(text, testid, label) {
  const element = document.createElement("button");
  element.type = "button";
  element.dataset.testid = testid;
  element.setAttribute("aria-label", label);
  element.append(text);
  return element;
}

function createRow(id, where) {
  const tr = document.createElement("tr");
  tr.dataset.taskId = id;
  tr.dataset.testid = "task-row";
  const cells = {};
  for (const field of ["id", "name", "state", "progress", "message", "result", "actions"]) {
    const td = document.createElement("td");
    td.dataset.field = field;
    tr.append(td);
    cells[field] = td;
  }
  const code = document.createElement("code");
  code.textContent = shortId(id);
  const details = button(code, "details", `Details of task ${shortId(id)}`);
  details.className = "link";
  cells.id.append(details);

  const bar = document.createElement("progress");
  bar.max = 1;
  bar.value = 0;
  bar.dataset.testid = "progress";
  bar.setAttribute("aria-label", `Progress of task ${shortId(id)}`);
  const count = document.createElement("span");
  count.className = "count";
  cells.progress.append(bar, count);

  const cancel = button("Cancel", "cancel", `Cancel task ${shortId(id)}`);
  cells.actions.append(cancel);

  const row = { id, tr, cells, bar, count, cancel, view: null, done: false };
  rows.set(id, row);
  if (where === "top") tasksBody.prepend(tr);
  else tasksBody.append(tr);
  updateEmpty();
  return row;
}

export function updateEmpty() {
  tasksEmpty.hidden = rows.size > 0 || tasksBody.dataset.loaded !== "true";
}

/** The row of a task just submitted from this page: on top, whatever the list's filters. */
export function submittedRow(submitted) {
  const row = rows.get(submitted.task_id) || createRow(submitted.task_id, "top");
  if (!row.view) setState(row, submitted.state);
  return row;
}

/** Take every row off the table (a new listing replaces them). */
export function removeRows() {
  rows.clear();
  tasksBody.replaceChildren();
  updateEmpty();
}

function setState(row, state) {
  row.cells.state.textContent = state;
  row.tr.dataset.state = state;
  if (TERMINAL.has(state)) finish(row);
}

function finish(row) {
  row.done = true;
  row.cancel.disabled = true;
  row.tr.dataset.follow = "";
}

/** A task view's error as text: "Type: message". */
export const errorText = (error) => `${error.type}: ${error.message}`;

/** The error's traceback, folded (the API sends one only with KUBETASKS_SHOW_TRACEBACKS). */
export function tracebackDetails(error) {
  const details = document.createElement("details");
  const summary = document.createElement("summary");
  summary.textContent = "traceback";
  const pre = document.createElement("pre");
  pre.textContent = error.traceback;
  details.append(summary, pre);
  return details;
}

function showResult(cell, view) {
  cell.replaceChildren();
  cell.dataset.kind = "";
  if (view.state === "SUCCESS") {
    cell.append(resultContent(view));
  } else if (view.error) {
    cell.dataset.kind = "error";
    cell.textContent = errorText(view.error);
    if (view.error.traceback) cell.append(tracebackDetails(view.error));
  } else if (view.state === "REVOKED") {
    cell.textContent = "cancelled";
  }
}

function showProgress(row, view) {
  const progress = view.progress;
  if (progress && Number.isFinite(progress.total) && Number.isFinite(progress.current)) {
    const total = progress.total > 0 ? progress.total : 1;
    row.bar.max = total;
    row.bar.value = Math.min(Math.max(progress.current, 0), total);
    row.count.textContent = `${formatNumber(progress.current)}/${formatNumber(progress.total)}`;
    row.cells.message.textContent = progress.message || "";
  }
  if (view.state === "SUCCESS") row.bar.value = row.bar.max;
}

/** Apply a TaskView to its row (creating the row when it is new). */
export function applyView(view, where = "top") {
  if (!view || typeof view.task_id !== "string" || typeof view.state !== "string") return;
  const row = rows.get(view.task_id) || createRow(view.task_id, where);
  // Never move a finished task back to a live state because of an older, slower response.
  if (row.view && TERMINAL.has(row.view.state) && !TERMINAL.has(view.state)) return;
  row.view = view;

  row.cells.name.textContent = view.name || "";
  row.cells.name.title = `queue ${view.queue}, priority ${view.priority}`;
  row.cells.id.title = `${view.task_id}, submitted ${formatTime(view.submitted_at)}`;
  showProgress(row, view);
  showResult(row.cells.result, view);
  setState(row, view.state);
  for (const listener of viewListeners) listener(view);
}

export function markGone(row, err) {
  row.cells.message.textContent = err.message;
  row.tr.dataset.gone = "true";
  finish(row);
}
