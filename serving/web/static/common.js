// Shared by every page: the signed-in user, the API wrapper with errors in words, the header.
const KEY = "feedstream.token";

export function session() {
  const token = localStorage.getItem(KEY);
  if (!token) return null;
  try {
    const claims = JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
    if (claims.exp && claims.exp * 1000 < Date.now()) return null;
    return { token, user: claims.sub, roles: claims.roles || [] };
  } catch {
    return null;
  }
}

export function signIn(token) { localStorage.setItem(KEY, token.trim()); }
export function signOut() { localStorage.removeItem(KEY); location.href = "/"; }

export class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

function detailText(body) {
  const d = body && body.detail;
  if (Array.isArray(d)) {  // FastAPI validation errors: name the field
    return d.map((e) => `${(e.loc || []).filter((p) => p !== "body").join(".") || "input"}: ${e.msg}`).join("; ");
  }
  return typeof d === "string" ? d : "";
}

// The sentence a person reads for an API error.
export function humanError(status, body, retryAfter) {
  const detail = detailText(body);
  const wait = retryAfter ? ` Try again in ${retryAfter} s.` : " Try again in a moment.";
  if (status === 429) return `You're doing that too often.${wait}`;
  if (status === 503) return `The service is busy or partly down; nothing was changed.${wait}`;
  if (status === 401) return "Your sign-in has expired or is not valid. Sign in again.";
  if (status === 403 && /moderat|hidden|removed|limited/i.test(detail)) return "This post was removed by moderation.";
  if (status === 403 && /not visible/i.test(detail)) return "This post isn't available to you: it was removed by moderation, or its author limits who sees it.";
  if (status === 403) return `You're not allowed to do that${detail ? ` (${detail})` : ""}.`;
  if (status === 404) return `That no longer exists${detail ? ` (${detail})` : ""}.`;
  if (status === 409) return `That was already done${detail ? `: ${detail}` : ""}.`;
  if (status === 413) return "That is too large to send.";
  if (status === 422 || status === 400) return `Please check your input: ${detail || "it was not accepted"}.`;
  if (status === 0) return "Can't reach the server. Check your connection and try again.";
  return `Something went wrong (${status}). Try again.`;
}

// The newest X-Consistency-Token a write answered: the next read of one's own feed waits for it.
export const consistency = { token: null };

/**
 * Call the JSON API with the signed-in user's token; throws an {@link ApiError} worded for people.
 * @param {string} path
 * @param {{method?: string, body?: unknown, params?: Record<string, unknown>, token?: string | null}} [options]
 * @returns {Promise<any>}
 */
export async function api(path, { method = "GET", body, params, token } = {}) {
  const s = session();
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(params || {})) if (v !== undefined && v !== null) url.searchParams.set(k, String(v));
  const headers = { Accept: "application/json" };
  if (s) headers.Authorization = `Bearer ${s.token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers["X-Consistency-Token"] = token;
  let res;
  try {
    res = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError(0, humanError(0));
  }
  const data = res.headers.get("content-type")?.includes("json") ? await res.json().catch(() => null) : null;
  if (!res.ok) throw new ApiError(res.status, humanError(res.status, data, res.headers.get("Retry-After")));
  if (method !== "GET" && res.headers.get("X-Consistency-Token")) consistency.token = res.headers.get("X-Consistency-Token");
  return data;
}

// A message in the page's live region (errors are role=alert).
export function say(text, kind = "error") {
  const box = document.getElementById("messages");
  const p = document.createElement("p");
  p.className = `msg ${kind}`;
  p.setAttribute("role", kind === "error" ? "alert" : "status");
  p.textContent = text;
  box.prepend(p);
  setTimeout(() => p.remove(), 8000);
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v === true) node.setAttribute(k, "");
    else if (v !== false && v !== null && v !== undefined) node.setAttribute(k, v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) node.append(c);
  return node;
}

// The header: navigation (the console only for moderators), the user, sign out; or the sign-in form.
export function frame(active) {
  const s = session();
  const nav = document.getElementById("nav");
  const links = [["/", "Feed"], ["/dashboard", "Pipeline"]];
  if (s && s.roles.includes("moderator")) links.splice(1, 0, ["/moderation", "Moderation"]);
  nav.replaceChildren(...links.map(([href, label]) =>
    el("a", { href, "aria-current": href === active ? "page" : null }, label)));
  const who = document.getElementById("who");
  if (s) {
    who.replaceChildren(el("span", { class: "me" }, `@${s.user}`),
      el("button", { type: "button", class: "link", onclick: signOut }, "Sign out"));
    return s;
  }
  const main = document.querySelector("main");
  main.replaceChildren(el("section", { class: "card signin", "aria-labelledby": "signin-h" },
    el("h1", { id: "signin-h" }, "Sign in"),
    el("p", {}, "Paste a token. Locally: ", el("code", {}, "feedstream dev token USER"),
      " (add ", el("code", {}, "--role moderator"), " for the moderation console)."),
    el("form", { onsubmit: (e) => { e.preventDefault(); signIn(e.target.token.value); location.reload(); } },
      el("label", { for: "token" }, "Token"),
      el("textarea", { id: "token", name: "token", rows: 4, required: true, autocomplete: "off" }),
      el("button", { type: "submit" }, "Sign in"))));
  return null;
}

export function ago(ms) {
  if (!ms) return "";
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h`;
  return new Date(ms).toLocaleDateString();
}
