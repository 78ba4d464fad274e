// The task list: the newest tasks, filtered by state and name through the API's listing
// (GET /tasks?state=&name=&cursor=), a page at a time; the seed's buttons; cancel and details.

import { showDetails } from "./details.js";
import { restartStream, pollOnce, resync, streamed } from "./follow.js";
import { shortId } from "./format.js";
import { getJson, send, taskPath } from "./http.js";
import { applyView, removeRows, rows, submittedRow, tasksBody, updateEmpty } from "./rows.js";
import { clearStatus, setStatus, showError } from "./status.js";

const PAGE_SIZE = 20;

const filters = document.querySelector("#task-filters");
const nameFilter = document.querySelector("#filter-name");
const more = document.querySelector("#tasks-more");

let nextCursor = null;
// Bumped by each new listing: a page that arrives for an older one is dropped.
let listing = 0;

function listPath(cursor) {
  const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
  for (const [key, value] of new FormData(filters)) if (value) query.set(key, value);
  if (cursor) query.set("cursor", cursor);
  return `/tasks?${query}`;
}

async function loadPage(cursor) {
  const current = listing;
  more.disabled = true;
  try {
    const page = await getJson(listPath(cursor));
    if (current !== listing) return;
    for (const view of page.items || []) {
      // Rows already shown are kept: the stream has fresher data than this list.
      if (!rows.has(view.task_id)) applyView(view, "bottom");
    }
    nextCursor = page.next_cursor || null;
    resync();
    tasksBody.dataset.loaded = "true";
    clearStatus("recent");
  } catch (err) {
    if (current !== listing) return;
    tasksBody.dataset.loaded = "error";
    showError("Could not load the tasks", err, "recent");
  } finally {
    if (current === listing) {
      more.hidden = !nextCursor;
      more.disabled = false;
    }
  }
  updateEmpty();
}

/** List the newest tasks that match the filters, in place of the rows shown. */
export function loadTasks() {
  listing += 1;
  nextCursor = null;
  tasksBody.dataset.loaded = "";
  removeRows();
  restartStream();
  return loadPage(null);
}

/** The task names the name filter offers (the API answers 422 for a name it does not know). */
export function setTaskNames(names) {
  nameFilter.append(...names.map((name) => new Option(name, name)));
}

/** Show and follow a task just submitted from this page. */
export function track(submitted) {
  submittedRow(submitted);
  setStatus(`Submitted task ${shortId(submitted.task_id)}.`);
  resync();
}

async function submitSeed(type, button) {
  button.disabled = true;
  try {
    const response = await send("/tasks", { method: "POST", body: { type } });
    track(await response.json());
  } catch (err) {
    showError("Could not submit the task", err);
  } finally {
    button.disabled = false;
  }
}

async function cancelTask(row) {
  row.cancel.disabled = true;
  try {
    await send(`${taskPath(row.id)}/cancel`, { method: "POST" });
    setStatus(`Cancelled task ${shortId(row.id)}.`);
  } catch (err) {
    showError(`Could not cancel task ${shortId(row.id)}`, err);
    if (!row.done && err.status !== 409) row.cancel.disabled = false;
  }
  // A stream that answered brings the new state; else read it (the stream may be down,
  // not open yet, or the task ended before and the cancel was refused).
  if (!streamed(row.id)) await pollOnce(row);
}

/** One listener for every row's buttons, rows come and go with each listing. */
function onRowClick(event) {
  const button = event.target.closest("button[data-testid]");
  const row = button && rows.get(button.closest("tr").dataset.taskId);
  if (!row) return;
  if (button.dataset.testid === "cancel") cancelTask(row);
  else if (button.dataset.testid === "details") showDetails(row.id);
}

export function startTasks() {
  for (const button of document.querySelectorAll("button[data-type]")) {
    button.addEventListener("click", () => submitSeed(Number(button.dataset.type), button));
  }
  tasksBody.addEventListener("click", onRowClick);
  filters.addEventListener("change", loadTasks);
  filters.addEventListener("submit", (event) => event.preventDefault());
  more.addEventListener("click", () => loadPage(nextCursor));
  loadTasks();
}
