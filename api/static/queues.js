// The queues panel: backlog, ready, in flight, oldest wait and workers per queue, polled; and
// the backlog of the last minutes as a chart beside the table, from the same polls (kept in
// this page's memory only), so that one sees whether a queue grows or drains.

import { drawBacklog } from "./chart.js";
import { getJson } from "./http.js";
import { clearStatus, showError } from "./status.js";

const QUEUES_MS = 2000;
const HISTORY_MS = 5 * 60 * 1000;

const queuesSection = document.querySelector('[data-testid="queues"]');
const queuesBody = document.querySelector("#queues-body");
const chart = document.querySelector("#backlog-chart");
const legend = document.querySelector("#backlog-legend");

const queueRows = new Map();
/** {at: ms, backlog: Map queue -> backlog}, oldest first, the last HISTORY_MS of them */
const samples = [];
let queuePolls = 0;

function queueRow(name) {
  let entry = queueRows.get(name);
  if (entry) return entry;
  const tr = document.createElement("tr");
  tr.dataset.queue = name;
  const cells = {};
  for (const field of ["name", "backlog", "ready", "in_flight", "oldest", "workers"]) {
    const cell = document.createElement(field === "name" ? "th" : "td");
    if (field === "name") cell.scope = "row";
    cell.dataset.field = field;
    tr.append(cell);
    cells[field] = cell;
  }
  const bar = document.createElement("progress");
  bar.max = 1;
  bar.value = 0;
  bar.setAttribute("aria-label", `Backlog of queue ${name}, relative to its peak`);
  const count = document.createElement("span");
  count.className = "count";
  cells.backlog.append(bar, count);
  entry = { tr, cells, bar, count, peak: 0 };
  queueRows.set(name, entry);
  queuesBody.append(tr);
  return entry;
}

function renderQueues(overview) {
  for (const q of overview.queues || []) {
    const entry = queueRow(q.name);
    entry.cells.name.textContent = q.name;
    entry.peak = Math.max(entry.peak, q.backlog, 4);
    entry.bar.max = entry.peak;
    entry.bar.value = q.backlog;
    entry.bar.title = `peak ${entry.peak} seen; the queue accepts up to ${q.max_backlog}`;
    entry.count.textContent = String(q.backlog);
    entry.cells.ready.textContent = String(q.ready);
    entry.cells.in_flight.textContent = String(q.in_flight);
    entry.cells.oldest.textContent = q.oldest_age_seconds ? `${q.oldest_age_seconds.toFixed(1)} s` : "–";
    entry.cells.workers.textContent = String(q.workers);
    entry.tr.dataset.backlog = String(q.backlog);
  }
  for (const field of ["workers", "delayed", "dead_letters"]) {
    const target = queuesSection.querySelector(`.summary [data-field="${field}"]`);
    target.textContent = String(overview[field] ?? "–");
  }
}

function recordBacklog(overview, now) {
  const backlog = new Map((overview.queues || []).map((q) => [q.name, q.backlog]));
  samples.push({ at: now, backlog });
  while (samples.length && samples[0].at < now - HISTORY_MS) samples.shift();
  drawBacklog(chart, legend, samples, HISTORY_MS, now);
}

async function refreshQueues() {
  try {
    const overview = await getJson("/queues");
    renderQueues(overview);
    recordBacklog(overview, Date.now());
    queuesSection.dataset.stale = "false";
    clearStatus("queues");
  } catch (err) {
    queuesSection.dataset.stale = "true";
    showError("Could not read the queues", err, "queues");
  } finally {
    queuePolls += 1;
    queuesSection.dataset.polls = String(queuePolls);
    setTimeout(refreshQueues, QUEUES_MS);
  }
}

export function startQueues() {
  refreshQueues();
}
