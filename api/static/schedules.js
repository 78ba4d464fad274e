// The schedules panel: each schedule with its timing, next and last run, polled.

import { getJson } from "./http.js";
import { clearStatus, showError } from "./status.js";

const SCHEDULES_MS = 5000;

const schedulesSection = document.querySelector('[data-testid="schedules"]');
const schedulesBody = document.querySelector("#schedules-body");
const schedulesEmpty = document.querySelector("#schedules-empty");

const when = (iso) => (iso ? new Date(iso).toLocaleString() : "–");

function timing(schedule) {
  if (schedule.cron) return `cron ${schedule.cron} (${schedule.timezone})`;
  return `every ${schedule.interval_seconds} s`;
}

function renderSchedules(list) {
  const rows = list.items.map((schedule) => {
    const tr = document.createElement("tr");
    tr.dataset.schedule = schedule.name;
    tr.dataset.paused = String(schedule.paused);
    const next = schedule.paused ? "paused" : when(schedule.next_run_at);
    const cells = [schedule.name, schedule.task, timing(schedule), next, when(schedule.last_run_at)];
    cells.forEach((text, i) => {
      const cell = document.createElement(i === 0 ? "th" : "td");
      if (i === 0) cell.scope = "row";
      cell.textContent = text;
      tr.append(cell);
    });
    tr.children[3].dataset.field = "next";
    return tr;
  });
  schedulesBody.replaceChildren(...rows);
  schedulesEmpty.hidden = rows.length > 0;
}

async function refreshSchedules() {
  try {
    renderSchedules(await getJson("/schedules"));
    schedulesSection.dataset.stale = "false";
    clearStatus("schedules");
  } catch (err) {
    schedulesSection.dataset.stale = "true";
    showError("Could not read the schedules", err, "schedules");
  } finally {
    setTimeout(refreshSchedules, SCHEDULES_MS);
  }
}

export function startSchedules() {
  refreshSchedules();
}
