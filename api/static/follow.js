// Following the task rows: one event stream for every live row, polling as the fallback.
// GET /events?ids=... sends each listed task's view, then every change, and ends once every
// one ended. The page keeps one such stream covering every row that has not ended; it reopens
// it (aborting the old one) when a row appears that the stream does not cover, or when it
// ended. A row that ends needs no reopen: the server stops sending for it by itself. While
// the stream is down (a network error, a non-200 answer) the page polls each live row, and
// tries the stream again every STREAM_RETRY_MS.

import { shortId } from "./format.js";
import { ApiError, delay, getJson, send, taskPath } from "./http.js";
import { applyView, markGone, rows, tasksBody } from "./rows.js";
import { sseParser } from "./sse.js";
import { clearStatus, showError } from "./status.js";

const POLL_MS = 1000;
const STREAM_RETRY_MS = 15000;
// How long the set of live rows must stay the same before the stream is reopened for it:
// a burst of submits opens one stream, not one each.
const STREAM_DEBOUNCE_MS = 250;
const MAX_STREAM_IDS = 200; // what GET /events?ids= takes; rows past it are polled

/** The stream open or being opened: {ids: Set, controller, healthy}, or null. */
let stream = null;
let streamFailed = false; // polling stands in for the stream until one answers 200
let streamRetryTimer = 0; // set while the stream failed and waits to be tried again
let syncTimer = 0;
let polling = false;

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
export function resync() {
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
export function restartStream() {
  clearTimeout(streamRetryTimer);
  streamRetryTimer = 0;
  if (stream) stream.controller.abort();
  stream = null;
  setStreamState("");
  resync();
}

/** Read the task once; returns how long to wait before the next read. */
export async function pollOnce(row) {
  row.tr.dataset.follow = "poll";
  try {
    const view = await getJson(taskPath(row.id));
    // A new listing may have taken the row off the table meanwhile: do not bring it back.
    if (rows.get(row.id) === row) applyView(view);
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

/** Whether the open stream brings the task's changes (else a read has to). */
export function streamed(id) {
  return Boolean(stream && stream.healthy && stream.ids.has(id));
}
