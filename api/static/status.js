// The page's one status line. Each part that reports an error names itself as its source, so
// that its next success clears its own error and nobody else's.

const statusLine = document.querySelector("#status");
let statusSource = "";

export function setStatus(message, kind = "info", source = "") {
  statusLine.textContent = message;
  statusLine.dataset.kind = kind;
  statusSource = source;
}

export function showError(context, err, source = "") {
  const status = err && err.status ? ` (HTTP ${err.status})` : "";
  const message = err && err.message ? err.message : String(err);
  setStatus(`${context}: ${message}${status}`, "error", source);
}

export function clearStatus(source) {
  if (statusSource === source && statusLine.dataset.kind === "error") setStatus("", "info");
}
