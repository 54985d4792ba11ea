// The only module that knows the API's URLs. Reads need no token unless the controller
// is set to protect them; every action sends the token the user saved, and the server,
// not this page, decides whether it is allowed.

const BASE = "/api/v1";
const TOKEN_KEY = "kubedag.token";
const TIMEOUT_MS = 15000;

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY) || "",
  set: (value) => (value ? sessionStorage.setItem(TOKEN_KEY, value) : sessionStorage.removeItem(TOKEN_KEY)),
};

function headers(extra = {}) {
  const result = { Accept: "application/json", ...extra };
  const saved = token.get();
  if (saved) result.Authorization = `Bearer ${saved}`;
  return result;
}

async function request(method, path, { body, signal } = {}) {
  const timeout = AbortSignal.timeout(TIMEOUT_MS);
  const response = await fetch(BASE + path, {
    method,
    headers: headers(body === undefined ? {} : { "Content-Type": "application/json" }),
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
  });
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const message = (data && (data.error || data.message)) || text.trim() || response.statusText;
    throw new ApiError(response.status, message);
  }
  return data;
}

function query(params) {
  const pairs = Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== "");
  return pairs.length ? "?" + new URLSearchParams(pairs).toString() : "";
}

const enc = encodeURIComponent;

export const api = {
  dags: (signal) => request("GET", "/dags", { signal }),
  dag: (name, signal) => request("GET", `/dags/${enc(name)}`, { signal }),
  grid: (name, { limit, before } = {}, signal) =>
    request("GET", `/dags/${enc(name)}/grid${query({ limit, before })}`, { signal }),
  run: (id, signal) => request("GET", `/runs/${enc(id)}`, { signal }),
  graph: (id, signal) => request("GET", `/runs/${enc(id)}/graph`, { signal }),
  tasks: (id, { task, limit, offset } = {}, signal) =>
    request("GET", `/runs/${enc(id)}/tasks${query({ task, limit, offset })}`, { signal }),
  events: (id, signal) => request("GET", `/runs/${enc(id)}/events`, { signal }),
  tries: (id, task, item, signal) =>
    request("GET", `/runs/${enc(id)}/tasks/${enc(task)}/${enc(item)}`, { signal }),

  trigger: (name, params) => request("POST", `/dags/${enc(name)}/trigger`, { body: { params } }),
  pause: (name, paused) => request("POST", `/dags/${enc(name)}/${paused ? "pause" : "unpause"}`, { body: {} }),
  backfill: (name, body) => request("POST", `/dags/${enc(name)}/backfill`, { body }),
  cancel: (id) => request("POST", `/runs/${enc(id)}/cancel`, { body: {} }),
  retry: (id, body = {}) => request("POST", `/runs/${enc(id)}/retry`, { body }),
  mark: (id, task, item, body) =>
    request("POST", `/runs/${enc(id)}/tasks/${enc(task)}/${enc(item)}/mark`, { body }),

  // A log as a stream of text chunks: the whole stored log for a finished try, or the
  // pod's log followed until the container ends for a running one.
  async streamLog(id, task, item, tryNumber, { follow, signal, onChunk }) {
    const path = `/runs/${enc(id)}/tasks/${enc(task)}/${enc(item)}/log${query({ try: tryNumber, follow: follow ? 1 : undefined })}`;
    const response = await fetch(BASE + path, { headers: headers({ Accept: "text/plain" }), signal });
    if (!response.ok) throw new ApiError(response.status, (await response.text()).trim() || response.statusText);
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      onChunk(decoder.decode(value, { stream: true }));
    }
    onChunk(decoder.decode());
  },
};
