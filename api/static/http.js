// Calls to the page's own API: the API key saved in this browser goes with each one, and an
// answer that is not 2xx becomes an ApiError carrying the API's code, message and, for a 422,
// the fields it names.

const KEY_STORAGE = "kubetasks.apiKey";

export class ApiError extends Error {
  constructor(status, code, message, { retryAfter = 0, fields = [] } = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
    this.fields = fields; // [{field: "args.seconds", message}] of a 422
  }
}

export function storedKey() {
  try {
    return localStorage.getItem(KEY_STORAGE) || "";
  } catch {
    return "";
  }
}

export function storeKey(key) {
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

const isFieldProblem = (f) => f && typeof f.field === "string" && typeof f.message === "string";

async function errorFrom(response) {
  let code = "http_error";
  let message = `${response.status} ${response.statusText}`.trim();
  let fields = [];
  try {
    const body = await response.json();
    if (body && typeof body.message === "string" && body.message) message = body.message;
    if (body && typeof body.error === "string") code = body.error;
    if (body && Array.isArray(body.fields)) fields = body.fields.filter(isFieldProblem);
  } catch {
    // Not JSON (a proxy's error page, say): keep the status line.
  }
  const retryAfter = Number(response.headers.get("Retry-After"));
  return new ApiError(response.status, code, message, {
    retryAfter: retryAfter > 0 ? retryAfter : 0,
    fields,
  });
}

export async function send(path, { method = "GET", body, accept = "application/json", signal } = {}) {
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

export async function getJson(path, options) {
  const response = await send(path, options);
  return response.json();
}

export const taskPath = (id) => `/tasks/${encodeURIComponent(id)}`;
export const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
