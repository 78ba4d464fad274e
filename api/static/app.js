// kubetasks page: submit, follow (one Server-Sent Events stream over fetch for every live task,
// polling as fallback), cancel;
// queues, schedules and workflows, polled.
// No framework, no build step, nothing from outside this origin. Server data only ever reaches
// the DOM through textContent and attributes, never as markup.
"use strict";

(() => {
  const TERMINAL = new Set(["SUCCESS", "FAILURE", "REVOKED"]);
  const KEY_STORAGE = "kubetasks.apiKey";
  const RECENT_LIMIT = 20;
  const POLL_MS = 1000;
  const QUEUES_MS = 2000;
  const SCHEDULES_MS = 5000;
  // Workflows are polled, not streamed: one request keeps every listed one fresh and holds
  // no connection open (browsers open about six HTTP/1.1 connections per host).
  const WORKFLOWS_MS = 2000;
  const WORKFLOWS_LIMIT = 10;
  const STREAM_RETRY_MS = 15000;
  // How long the set of live rows must stay the same before the stream is reopened for it:
  // a burst of submits opens one stream, not one each.
  const STREAM_DEBOUNCE_MS = 250;
  const MAX_STREAM_IDS = 200; // what GET /events?ids= takes; rows past it are polled
  const MAX_SSE_BUFFER = 8 * 1024 * 1024;
  const RESULT_CHARS = 400;

  const $ = (selector) => document.querySelector(selector);
  const statusLine = $("#status");
  const tasksBody = $("#tasks-body");
  const tasksEmpty = $("#tasks-empty");
  const queuesSection = $('[data-testid="queues"]');
  const queuesBody = $("#queues-body");
  const schedulesSection = $('[data-testid="schedules"]');
  const schedulesBody = $("#schedules-body");
  const schedulesEmpty = $("#schedules-empty");
  const workflowsSection = $('[data-testid="workflows"]');
  const workflowsList = $("#workflows-list");
  const workflowsEmpty = $("#workflows-empty");
  const keyForm = $("#key-form");
  const keyInput = $("#api-key");

  // ---- HTTP ---------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, code, message, retryAfter = 0) {
      super(message);
      this.name = "ApiError";
      this.status = status;
      this.code = code;
      this.retryAfter = retryAfter;
    }
  }

  function storedKey() {
    try {
      return localStorage.getItem(KEY_STORAGE) || "";
    } catch {
      return "";
    }
  }

  function storeKey(key) {
    try {
      if (key) localStorage.setItem(KEY_STORAGE, key);
      else localStorage.removeItem(KEY_STORAGE);
      return true;
    } catch {
      return false;
    }
  }

  function requestHeaders(accept) {
    const headers = new Headers({ Accept: accept });
    const key = storedKey();
    if (key) headers.set("X-API-Key", key);
    return headers;
  }

  async function errorFrom(response) {
    let code = "http_error";
    let message = `${response.status} ${response.statusText}`.trim();
    try {
      const body = await response.json();
      if (body && typeof body.message === "string" && body.message) message = body.message;
      if (body && typeof body.error === "string") code = body.error;
    } catch {
      // Not JSON (a proxy's error page, say): keep the status line.
    }
    const retryAfter = Number(response.headers.get("Retry-After"));
    return new ApiError(response.status, code, message, retryAfter > 0 ? retryAfter : 0);
  }

  async function send(path, { method = "GET", body, accept = "application/json", signal } = {}) {
    const init = { method, headers: requestHeaders(accept), cache: "no-store", signal };
    if (body !== undefined) {
      init.headers.set("Content-Type", "application/json");
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (err) {
      if (err && err.name === "AbortError") throw err;
      throw new ApiError(0, "network", `cannot reach the API (${err && err.message})`);
    }
    if (!response.ok) throw await errorFrom(response);
    return response;
  }

  async function getJson(path, options) {
    const response = await send(path, options);
    return response.json();
  }

  const taskPath = (id) => `/tasks/${encodeURIComponent(id)}`;
  const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  // ---- Status line --------------------------------------------------------------------

  let statusSource = "";

  function setStatus(message, kind = "info", source = "") {
    statusLine.textContent = message;
    statusLine.dataset.kind = kind;
    statusSource = source;
  }

  function showError(context, err, source = "") {
    const status = err && err.status ? ` (HTTP ${err.status})` : "";
    const message = err && err.message ? err.message : String(err);
    setStatus(`${context}: ${message}${status}`, "error", source);
  }

  function clearStatus(source) {
    if (statusSource === source && statusLine.dataset.kind === "error") setStatus("", "info");
  }

  // ---- Task rows ----------------------------------------------------------------------

  /** id -> {id, tr, cells, bar, count, cancel, view, done}, in the order the rows came */
  const rows = new Map();

  const shortId = (id) => id.slice(0, 8);

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
    code.title = id;
    cells.id.append(code);

    const bar = document.createElement("progress");
    bar.max = 1;
    bar.value = 0;
    bar.dataset.testid = "progress";
    bar.setAttribute("aria-label", `Progress of task ${shortId(id)}`);
    const count = document.createElement("span");
    count.className = "count";
    cells.progress.append(bar, count);

    const cancel = document.createElement("button");
    cancel.type = "button";
    cancel.textContent = "Cancel";
    cancel.dataset.testid = "cancel";
    cancel.setAttribute("aria-label", `Cancel task ${shortId(id)}`);
    cells.actions.append(cancel);

    const row = { id, tr, cells, bar, count, cancel, view: null, done: false };
    cancel.addEventListener("click", () => cancelTask(row));
    rows.set(id, row);
    if (where === "top") tasksBody.prepend(tr);
    else tasksBody.append(tr);
    updateEmpty();
    return row;
  }

  function updateEmpty() {
    tasksEmpty.hidden = rows.size > 0 || tasksBody.dataset.loaded !== "true";
  }

  function formatNumber(n) {
    return Number.isInteger(n) ? String(n) : n.toFixed(1);
  }

  function formatValue(value) {
    if (value === null || value === undefined) return "";
    const text = typeof value === "string" ? value : JSON.stringify(value);
    return text.length > RESULT_CHARS
      ? `${text.slice(0, RESULT_CHARS)}… (${text.length} characters)`
      : text;
  }

  function formatTime(iso) {
    if (!iso) return "";
    const date = new Date(iso);
    return Number.isNaN(date.getTime()) ? String(iso) : date.toLocaleString();
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

  /** Apply a TaskView to its row (creating the row when it is new). */
  function applyView(view, where = "top") {
    if (!view || typeof view.task_id !== "string" || typeof view.state !== "string") return;
    const row = rows.get(view.task_id) || createRow(view.task_id, where);
    // Never move a finished task back to a live state because of an older, slower response.
    if (row.view && TERMINAL.has(row.view.state) && !TERMINAL.has(view.state)) return;
    row.view = view;

    row.cells.name.textContent = view.name || "";
    row.cells.name.title = [
      `queue ${view.queue}`,
      `priority ${view.priority}`,
      `attempts ${view.attempts}`,
      view.retries ? `retries ${view.retries}` : "",
      view.worker ? `worker ${view.worker}${view.worker_pid ? ` (pid ${view.worker_pid})` : ""}` : "",
    ]
      .filter(Boolean)
      .join(", ");
    row.cells.id.title = `submitted ${formatTime(view.submitted_at)}`;

    const progress = view.progress;
    if (progress && Number.isFinite(progress.total) && Number.isFinite(progress.current)) {
      const total = progress.total > 0 ? progress.total : 1;
      row.bar.max = total;
      row.bar.value = Math.min(Math.max(progress.current, 0), total);
      row.count.textContent = `${formatNumber(progress.current)}/${formatNumber(progress.total)}`;
      row.cells.message.textContent = progress.message || "";
    }
    if (view.state === "SUCCESS") row.bar.value = row.bar.max;

    const result = row.cells.result;
    result.replaceChildren();
    result.dataset.kind = "";
    if (view.state === "SUCCESS") {
      result.textContent = formatValue(view.result);
    } else if (view.error) {
      result.dataset.kind = "error";
      result.textContent = `${view.error.type}: ${view.error.message}`;
      if (view.error.traceback) {
        const details = document.createElement("details");
        const summary = document.createElement("summary");
        summary.textContent = "traceback";
        const pre = document.createElement("pre");
        pre.textContent = view.error.traceback;
        details.append(summary, pre);
        result.append(details);
      }
    } else if (view.state === "REVOKED") {
      result.textContent = "cancelled";
    }

    setState(row, view.state);
  }

  function markGone(row, err) {
    row.cells.message.textContent = err.message;
    row.tr.dataset.gone = "true";
    finish(row);
  }

  // ---- Following the tasks: one event stream for every live row -----------------------
  // GET /events?ids=... sends each listed task's view, then every change, and ends once every
  // one ended. The page keeps one such stream covering every row that has not ended; it reopens
  // it (aborting the old one) when a row appears that the stream does not cover, or when it
  // ended. A row that ends needs no reopen: the server stops sending for it by itself. While
  // the stream is down (a network error, a non-200 answer) the page polls each live row, and
  // tries the stream again every STREAM_RETRY_MS.

  /** The stream open or being opened: {ids: Set, controller, healthy}, or null. */
  let stream = null;
  let streamFailed = false; // polling stands in for the stream until one answers 200
  let streamRetryTimer = 0; // set while the stream failed and waits to be tried again
  let syncTimer = 0;
  let polling = false;

  /** Incremental parser of text/event-stream; calls onEvent(type, data) per dispatched event. */
  function sseParser(onEvent) {
    let buffer = "";
    let type = "";
    let data = [];
    return (chunk) => {
      buffer += chunk;
      if (buffer.length > MAX_SSE_BUFFER) throw new Error("event stream line too long");
      // A trailing \r may be the first half of \r\n: keep it for the next chunk.
      const end = buffer.endsWith("\r") ? buffer.length - 1 : buffer.length;
      const lines = buffer.slice(0, end).replace(/\r\n?/g, "\n").split("\n");
      buffer = lines.pop() + buffer.slice(end);
      for (const line of lines) {
        if (line === "") {
          if (data.length) onEvent(type || "message", data.join("\n"));
          type = "";
          data = [];
          continue;
        }
        if (line.startsWith(":")) continue; // comment, e.g. keep-alive
        const colon = line.indexOf(":");
        const field = colon === -1 ? line : line.slice(0, colon);
        let value = colon === -1 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "event") type = value;
        else if (field === "data") data.push(value);
      }
    };
  }

  /** The ids the stream should cover: every live row, up to what one stream takes. */
  function streamIds() {
    const ids = [];
    for (const row of rows.values()) {
      if (row.done) continue;
      if (ids.length === MAX_STREAM_IDS) break;
      ids.push(row.id);
    }
    return ids;
  }

  function setStreamState(state) {
    tasksBody.dataset.stream = state;
  }

  /** Look at the live rows again soon; a burst of calls (submits) makes one look. */
  function resync() {
    clearTimeout(syncTimer);
    syncTimer = setTimeout(sync, STREAM_DEBOUNCE_MS);
  }

  function sync() {
    clearTimeout(syncTimer);
    syncTimer = 0;
    if (!streamRetryTimer) {
      const ids = streamIds();
      if (!stream || !ids.every((id) => stream.ids.has(id))) {
        if (stream) stream.controller.abort();
        stream = null;
        setStreamState("");
        if (ids.length) openStream(ids);
      }
    }
    pollLoop();
  }

  function openStream(ids) {
    const current = { ids: new Set(ids), controller: new AbortController(), healthy: false };
    stream = current;
    setStreamState("connecting");
    readStream(current)
      .then(
        () => streamEnded(current),
        (err) => streamBroke(current, err),
      )
      .catch((err) => showError("Could not follow the tasks", err));
  }

  /** Read the stream until it ends; throws when it cannot be opened or read. */
  async function readStream(current) {
    const query = [...current.ids].map(encodeURIComponent).join(",");
    const response = await send(`/events?ids=${query}`, {
      accept: "text/event-stream",
      signal: current.controller.signal,
    });
    if (!response.body || typeof TextDecoderStream === "undefined") {
      throw new Error("this browser cannot read streamed responses");
    }
    current.healthy = true;
    streamFailed = false;
    setStreamState("open");
    clearStatus("stream");
    for (const id of current.ids) {
      const row = rows.get(id);
      if (row && !row.done) row.tr.dataset.follow = "stream";
    }
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    const push = sseParser((type, data) => {
      if (type !== "task" || stream !== current) return;
      const view = JSON.parse(data);
      if (view && current.ids.has(view.task_id) && rows.has(view.task_id)) applyView(view);
    });
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        push(value);
      }
    } finally {
      current.controller.abort();
    }
  }

  /** The server ended the stream: every task it covered ended, or it did not know it. */
  async function streamEnded(current) {
    if (stream !== current) return; // replaced meanwhile
    stream = null;
    setStreamState("");
    // Unknown tasks are left out of a stream: read those once (404 or 410 marks them gone).
    const left = [...current.ids].map((id) => rows.get(id)).filter((row) => row && !row.done);
    await Promise.all(left.map(pollOnce));
    if (stream) return; // a newer stream covers whatever is still live
    if (left.some((row) => !row.done)) {
      streamBroke(null, new Error("the event stream ended before its tasks did"));
    } else {
      sync();
    }
  }

  function streamBroke(current, err) {
    if (stream !== current) return; // replaced (and aborted) meanwhile: no failure
    stream = null;
    streamFailed = true;
    setStreamState("failed");
    if (err instanceof ApiError) showError("Live updates failed, polling instead", err, "stream");
    clearTimeout(streamRetryTimer);
    streamRetryTimer = setTimeout(() => {
      streamRetryTimer = 0;
      sync();
    }, STREAM_RETRY_MS);
    pollLoop();
  }

  /** Open the stream again at once (with the API key just saved, say). */
  function restartStream() {
    clearTimeout(streamRetryTimer);
    streamRetryTimer = 0;
    if (stream) stream.controller.abort();
    stream = null;
    setStreamState("");
    resync();
  }

  /** Read the task once; returns how long to wait before the next read. */
  async function pollOnce(row) {
    row.tr.dataset.follow = "poll";
    try {
      applyView(await getJson(taskPath(row.id)));
      clearStatus(`task:${row.id}`);
      return POLL_MS;
    } catch (err) {
      if (err.status === 404 || err.status === 410) {
        markGone(row, err);
        return 0;
      }
      showError(`Task ${shortId(row.id)}`, err, `task:${row.id}`);
      return Math.max(POLL_MS, err.retryAfter * 1000 || 0);
    }
  }

  /** The live rows the stream does not stand for: all of them while it is down, else the
   * ones past what one stream takes. */
  function rowsToPoll() {
    const streamed = streamFailed ? new Set() : new Set(streamIds());
    return [...rows.values()].filter((row) => !row.done && !streamed.has(row.id));
  }

  async function pollLoop() {
    if (polling) return;
    polling = true;
    try {
      for (;;) {
        const due = rowsToPoll();
        if (!due.length) return;
        const waits = await Promise.all(due.map(pollOnce));
        await delay(Math.max(POLL_MS, ...waits));
      }
    } catch (err) {
      showError("Could not follow the tasks", err);
    } finally {
      polling = false;
    }
  }

  // ---- Actions ------------------------------------------------------------------------

  async function submit(type, button) {
    button.disabled = true;
    try {
      const response = await send("/tasks", { method: "POST", body: { type } });
      const submitted = await response.json();
      const row = rows.get(submitted.task_id) || createRow(submitted.task_id, "top");
      if (!row.view) setState(row, submitted.state);
      setStatus(`Submitted task ${shortId(submitted.task_id)}.`);
      resync();
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
    if (!(stream && stream.healthy && stream.ids.has(row.id))) await pollOnce(row);
  }

  async function loadRecent() {
    try {
      const page = await getJson(`/tasks?limit=${RECENT_LIMIT}`);
      for (const view of page.items || []) {
        // Rows already shown are kept: the stream has fresher data than this list.
        if (!rows.has(view.task_id)) applyView(view, "bottom");
      }
      resync();
      tasksBody.dataset.loaded = "true";
      clearStatus("recent");
    } catch (err) {
      tasksBody.dataset.loaded = "error";
      showError("Could not load recent tasks", err, "recent");
    }
    updateEmpty();
  }

  // ---- Queues -------------------------------------------------------------------------

  const queueRows = new Map();
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

  async function refreshQueues() {
    try {
      renderQueues(await getJson("/queues"));
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

  // ---- Schedules ----------------------------------------------------------------------

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

  // ---- Workflows ----------------------------------------------------------------------

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

  // ---- Wiring -------------------------------------------------------------------------

  for (const button of document.querySelectorAll("button[data-type]")) {
    button.addEventListener("click", () => submit(Number(button.dataset.type), button));
  }

  keyInput.value = storedKey();
  keyForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const key = keyInput.value.trim();
    if (!storeKey(key)) {
      setStatus("This browser does not allow storing the API key.", "error");
      return;
    }
    setStatus(key ? "API key saved." : "API key cleared.");
    restartStream();
    loadRecent();
  });

  loadRecent();
  refreshQueues();
  refreshSchedules();
  refreshWorkflows();
})();
