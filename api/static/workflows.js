// The workflows panel: the newest workflows, each with its steps in columns by level, polled.

import { formatTime, formatValue, shortId } from "./format.js";
import { getJson } from "./http.js";
import { clearStatus, showError } from "./status.js";

// Workflows are polled, not streamed: one request keeps every listed one fresh and holds
// no connection open (browsers open about six HTTP/1.1 connections per host).
const WORKFLOWS_MS = 2000;
const WORKFLOWS_LIMIT = 10;

const workflowsSection = document.querySelector('[data-testid="workflows"]');
const workflowsList = document.querySelector("#workflows-list");
const workflowsEmpty = document.querySelector("#workflows-empty");

/** workflow id -> {li, state, counts, times, result, steps: [{state}] by step index} */
const workflowItems = new Map();

function stateBadge() {
  const badge = document.createElement("span");
  badge.className = "state";
  badge.dataset.field = "state";
  return badge;
}

function showState(badge, state) {
  badge.textContent = state;
  badge.dataset.state = state;
}

/** Each step's level: 1 + the highest level among the steps it waits for (1 for none). */
function stepLevels(steps) {
  const levels = [];
  // A step only waits for steps given before it, so one pass in step order has their levels.
  for (const step of steps) {
    levels[step.step] = 1 + Math.max(0, ...step.after.map((n) => levels[n]));
  }
  return levels;
}

function levelColumn(level) {
  const li = document.createElement("li");
  li.className = "level";
  li.dataset.level = String(level);
  const name = document.createElement("p");
  name.className = "level-name";
  name.textContent = `Level ${level}`;
  const steps = document.createElement("ol");
  steps.className = "steps";
  li.append(name, steps);
  return { li, steps };
}

function stepItem(step) {
  const li = document.createElement("li");
  li.className = "step";
  li.dataset.step = String(step.step);
  li.dataset.taskId = step.task_id;
  const index = document.createElement("span");
  index.className = "index";
  index.textContent = `#${step.step}`;
  const name = document.createElement("span");
  name.dataset.field = "name";
  name.textContent = step.name;
  const state = stateBadge();
  const id = document.createElement("code");
  id.textContent = shortId(step.task_id);
  id.title = `task ${step.task_id}`;
  li.append(index, " ", name, " ", state, " ", id);
  if (step.after.length) {
    const after = document.createElement("small");
    after.className = "after";
    after.dataset.field = "after";
    after.textContent = `after ${step.after.map((n) => `#${n}`).join(", ")}`;
    li.append(after);
  }
  return { li, state };
}

/** The steps in columns by level: a step waits only for steps in columns left of its own.
 * Built once per workflow, as its steps and what they wait for never change. */
function stepGraph(view) {
  const levels = stepLevels(view.steps);
  const graph = document.createElement("ol");
  graph.className = "levels";
  graph.setAttribute("aria-label", `Steps of workflow ${shortId(view.workflow_id)} by level`);
  const columns = [];
  for (let level = 1; level <= Math.max(0, ...levels); level += 1) {
    const column = levelColumn(level);
    columns[level] = column;
    graph.append(column.li);
  }
  const steps = view.steps.map((step) => {
    const item = stepItem(step);
    columns[levels[step.step]].steps.append(item.li);
    return item;
  });
  return { graph, steps };
}

function workflowItem(view) {
  const li = document.createElement("li");
  li.className = "workflow";
  li.dataset.workflowId = view.workflow_id;
  li.dataset.testid = "workflow";
  const details = document.createElement("details");
  const summary = document.createElement("summary");
  const id = document.createElement("code");
  id.textContent = shortId(view.workflow_id);
  id.title = view.workflow_id;
  const state = stateBadge();
  const counts = document.createElement("span");
  counts.className = "counts";
  counts.dataset.field = "counts";
  summary.append("Workflow ", id, " ", state, " ", counts);
  const times = document.createElement("p");
  times.className = "times";
  const result = document.createElement("p");
  result.dataset.field = "result";
  const { graph, steps } = stepGraph(view);
  details.append(summary, times, result, graph);
  li.append(details);
  const entry = { li, state, counts, times, result, steps };
  workflowItems.set(view.workflow_id, entry);
  return entry;
}

function countsText(view) {
  const total = view.steps.length;
  const per = Object.entries(view.counts)
    .filter(([, n]) => n > 0)
    .map(([state, n]) => `${n} ${state}`);
  return `${total} ${total === 1 ? "step" : "steps"}: ${per.join(", ")}`;
}

function updateWorkflow(entry, view) {
  showState(entry.state, view.state);
  entry.counts.textContent = countsText(view);
  const finished = view.finished_at ? `, finished ${formatTime(view.finished_at)}` : "";
  entry.times.textContent = `Submitted ${formatTime(view.submitted_at)}${finished}`;
  entry.result.hidden = view.state !== "SUCCESS";
  entry.result.textContent = `Result: ${formatValue(view.result)}`;
  for (const step of view.steps) showState(entry.steps[step.step].state, step.state);
}

/** Update the list in place rather than rebuild it, so that an opened workflow stays open
 * and a focused one keeps the focus across refreshes. */
function renderWorkflows(list) {
  const listed = new Set(list.items.map((view) => view.workflow_id));
  for (const [id, entry] of workflowItems) {
    if (listed.has(id)) continue;
    entry.li.remove();
    workflowItems.delete(id);
  }
  list.items.forEach((view, i) => {
    const entry = workflowItems.get(view.workflow_id) || workflowItem(view);
    updateWorkflow(entry, view);
    // Only an item out of place moves: moving a node drops the focus inside it.
    const there = workflowsList.children[i];
    if (there !== entry.li) workflowsList.insertBefore(entry.li, there || null);
  });
  workflowsEmpty.hidden = list.items.length > 0;
}

async function refreshWorkflows() {
  try {
    renderWorkflows(await getJson(`/workflows?limit=${WORKFLOWS_LIMIT}`));
    workflowsSection.dataset.stale = "false";
    clearStatus("workflows");
  } catch (err) {
    workflowsSection.dataset.stale = "true";
    showError("Could not read the workflows", err, "workflows");
  } finally {
    setTimeout(refreshWorkflows, WORKFLOWS_MS);
  }
}

export function startWorkflows() {
  refreshWorkflows();
}
