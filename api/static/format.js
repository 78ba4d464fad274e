// Server values as text for the page: ids, numbers, times, durations, JSON (cut short).

const RESULT_CHARS = 400;

export const shortId = (id) => id.slice(0, 8);

export function formatNumber(n) {
  return Number.isInteger(n) ? String(n) : n.toFixed(1);
}

export function formatValue(value) {
  if (value === null || value === undefined) return "";
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return text.length > RESULT_CHARS
    ? `${text.slice(0, RESULT_CHARS)}… (${text.length} characters)`
    : text;
}

export function formatTime(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : date.toLocaleString();
}

/** The time from one ISO time to another, "" unless both are there. */
export function formatDuration(fromIso, toIso) {
  if (!fromIso || !toIso) return "";
  const seconds = (new Date(toIso) - new Date(fromIso)) / 1000;
  if (!Number.isFinite(seconds)) return "";
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 2 : 1)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}
