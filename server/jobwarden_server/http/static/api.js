// The JSON API (http/api.py). Credentials travel in the HttpOnly cookie the login form sets, or not
// at all in local mode; a 401 sends the page to its login form.

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message || `HTTP ${status}`);
    this.status = status;
    this.reason = body?.error?.reason || "";
  }
}

export async function call(method, path, body) {
  const init = { method, headers: {}, credentials: "same-origin" };
  if (method !== "GET") {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body || {});
  }
  const response = await fetch(path, init);
  const data = await response.json().catch(() => ({}));
  if (response.status === 401 && path !== "/api/session") {
    location.hash = "#/login";
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

export const get = (path) => call("GET", path);
export const post = (path, body) => call("POST", path, body);
export const del = (path) => call("DELETE", path);

// The filters of the list as a query string (the same names the API reads).
export function filterQuery(filter) {
  const q = new URLSearchParams();
  for (const s of filter.status || []) q.append("status", s);
  if (filter.type) q.set("type", filter.type);
  for (const l of filter.labels || []) q.append("label", l);
  if (filter.created_after) q.set("created_after", filter.created_after);
  if (filter.created_before) q.set("created_before", filter.created_before);
  if (filter.q) q.set("q", filter.q);
  return q;
}
