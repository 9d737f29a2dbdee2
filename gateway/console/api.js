// Calls the gateway's HTTP/JSON API with the session cookie; writes carry the session's CSRF token.
// Roles are enforced by the gateway: the page only shows what the answers say (403, 404, 501, 503 included).
let csrf = "";

export class ApiError extends Error {
  constructor(status, code, message, method) {
    super(message);
    this.status = status;
    this.code = code;
    this.method = method;
  }
}

export function setCsrf(value) {
  csrf = value || "";
}

async function request(method, path, { params, body } = {}) {
  const url = params ? `${path}?${new URLSearchParams(params)}` : path;
  const headers = { Accept: "application/json" };
  if (method !== "GET") {
    headers["Content-Type"] = "application/json";
    headers["X-CSRF-Token"] = csrf;
  }
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
    });
  } catch (err) {
    throw new ApiError(0, "NETWORK", String(err), "");
  }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = data.error || {};
    // The session ended (expiry, logout elsewhere, identity revoked): the page goes back to sign-in.
    if (response.status === 401 && path !== "/api/session") window.dispatchEvent(new CustomEvent("qf-signed-out"));
    throw new ApiError(response.status, error.code || "", error.message || response.statusText, error.method || "");
  }
  return data;
}

export const api = {
  get: (path, params) => request("GET", path, { params }),
  post: (path, body) => request("POST", path, { body: body || {} }),
  del: (path) => request("DELETE", path),
};

// Drop empty values so the gateway sees only what the user set.
export function compact(params) {
  return Object.fromEntries(Object.entries(params).filter(([, v]) => v !== "" && v !== undefined && v !== null && v !== false));
}
