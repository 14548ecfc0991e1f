// The home feed: tabs, infinite scroll by cursor, live "new posts" banner, compose, engagement,
// reactions, profiles (follow, friend, block), notifications with friend requests to accept,
// trending and search.
import { api, ago, consistency, el, frame, say } from "./common.js";

const me = frame("/");
const PAGE = 20;
const feed = document.getElementById("feed");
const more = document.getElementById("more");
const banner = document.getElementById("banner");
const state = { algorithm: "chronological", cursor: null, done: false, loading: false, seen: new Set(), fresh: new Set() };

function hashtagged(text) {
  const out = [];
  for (const part of (text || "").split(/(#[\p{L}\p{N}_]+)/u)) {
    out.push(part.startsWith("#") ? el("button", { type: "button", class: "tag", onclick: () => search(part) }, part) : part);
  }
  return out;
}

function countButton(label, key, n, onclick, pressed) {
  return el("button", { type: "button", class: "act", "data-count": key, "aria-pressed": pressed === undefined ? null : String(pressed), onclick },
    `${label} `, el("span", { class: "n" }, String(n ?? 0)));
}

function postItem(it) {
  const c = it.counts || { likes: 0, comments: 0, shares: 0 };
  const who = it.author?.display_name || it.author_id;
  const li = el("li", { class: "post card", "data-post": it.post_id, "data-author": it.author_id },
    el("article", { "aria-label": `Post by ${who}` },
      el("header", {},
        el("button", { type: "button", class: "author", onclick: () => profile(it.author_id) }, who),
        el("span", { class: "handle" }, ` @${it.author?.handle || it.author_id}`),
        el("time", { datetime: it.created_at ? new Date(it.created_at).toISOString() : null }, ` · ${ago(it.created_at)}`),
        it.visibility && it.visibility !== "PUBLIC" ? el("span", { class: "vis" }, ` · ${it.visibility.toLowerCase()}`) : null),
      el("p", { class: "text" }, hashtagged(it.text)),
      mediaBlock(it.media),
      el("div", { class: "actions" },
        countButton("Like", "likes", c.likes, (e) => like(it.post_id, e.currentTarget), false),
        countButton("Comment", "comments", c.comments, () => comments(li, it.post_id)),
        countButton("Share", "shares", c.shares, (e) => share(it.post_id, e.currentTarget)),
        el("button", { type: "button", class: "act", onclick: () => report(it.post_id) }, "Report")),
      reactionBar(it.post_id, c.reactions || {})));
  return li;
}

// Uploaded media (docs/media.md): a placeholder while processing; images as <picture> (AVIF, then
// WebP, then the fallback); videos as their poster linking to the HLS master playlist; a rejected
// media only reaches its author, with the reason.
function mediaBlock(media) {
  const shown = (media || []).filter((m) => m.media_id).map(mediaItem).filter(Boolean);
  return shown.length ? el("div", { class: "media" }, shown) : null;
}

function variant(m, name, ext) {
  return (m.variants || []).find((v) => v.name === name && (!ext || v.url.endsWith(`.${ext}`)));
}

function mediaItem(m) {
  if (m.state === "processing") return el("div", { class: "media-note", role: "status" }, `${m.kind === "VIDEO" ? "Video" : "Image"} processing…`);
  if (m.state === "rejected") return el("div", { class: "media-note bad" }, `Not shown to others: ${m.message || m.reason}`);
  if (m.state !== "ready") return null;
  if (m.kind === "IMAGE") {
    const avif = variant(m, "w480", "avif"), webp = variant(m, "w480", "webp"), fallback = variant(m, "original");
    const shown = webp || fallback;
    if (!shown) return null;
    return el("picture", {},
      avif ? el("source", { type: "image/avif", srcset: avif.url }) : null,
      webp ? el("source", { type: "image/webp", srcset: webp.url }) : null,
      el("img", { src: (fallback || shown).url, alt: "Attached image", loading: "lazy", width: String(shown.width), height: String(shown.height) }));
  }
  const poster = variant(m, "poster"), hls = variant(m, "hls");
  if (!poster || !hls) return null;
  return el("figure", { class: "video" },
    el("a", { href: hls.url, title: "Open the HLS stream" },
      el("img", { src: poster.url, alt: "Video poster", loading: "lazy", width: String(poster.width), height: String(poster.height) })),
    el("figcaption", {}, `Video · ${Math.round((m.duration_ms || 0) / 1000)} s · HLS`));
}

// One file: declare it, send it straight to the object store with the presigned form, hand it over.
async function upload(file) {
  const kind = file.type.startsWith("video/") ? "VIDEO" : "IMAGE";
  const declared = await api("/v1/media", { method: "POST", body: { kind, content_type: file.type, size_bytes: file.size } });
  const form = new FormData();
  for (const [k, v] of Object.entries(declared.upload.fields)) form.append(k, v);
  form.append(declared.upload.file_field, file);
  const sent = await fetch(declared.upload.url, { method: "POST", body: form });
  if (!sent.ok) throw new Error(`The object store refused ${file.name} (${sent.status}).`);
  await api(`/v1/media/${declared.media_id}/complete`, { method: "POST" });
  return declared.media_id;
}

// The API's reaction kinds (ReactionKind), each a toggle button with its count. Words, not emoji:
// they read the same in every font (Debian's Chromium has no colour emoji) and to screen readers.
const REACTIONS = [["LIKE", "thumbs up"], ["LOVE", "love"], ["HAHA", "haha"], ["WOW", "wow"], ["SAD", "sad"], ["ANGRY", "angry"]];

function reactionBar(postId, counts) {
  return el("div", { class: "reactions", role: "group", "aria-label": "Reactions" },
    el("span", { class: "hint" }, "React:"),
    REACTIONS.map(([kind, word]) => el("button", {
      type: "button", class: "act react", "data-count": `reaction-${kind}`, "aria-pressed": "false",
      onclick: (e) => react(postId, kind, e.currentTarget),
    }, `${word} `, el("span", { class: "n" }, String(counts[kind] ?? 0)))));
}

async function react(postId, kind, button) {
  const on = button.getAttribute("aria-pressed") !== "true";
  const before = Number(button.querySelector(".n").textContent);
  try {
    await api(`/v1/posts/${postId}/reactions/${kind}`, { method: on ? "PUT" : "DELETE" });
    button.setAttribute("aria-pressed", String(on));
    bump(button, on ? 1 : -1);
    sync(postId, button, kind, (n) => (on ? n > before : n < before), (post) => post.counts?.reactions?.[kind] ?? 0);
  } catch (err) { say(err.message); }
}

function add(items, { top = false } = {}) {
  const nodes = [];
  for (const it of items) {
    if (state.seen.has(it.post_id)) continue;
    state.seen.add(it.post_id);
    nodes.push(postItem(it));
  }
  if (top) feed.prepend(...nodes); else feed.append(...nodes);
  return nodes.length;
}

async function page({ reset = false } = {}) {
  if (state.loading || (state.done && !reset)) return;
  state.loading = true;
  feed.setAttribute("aria-busy", "true");
  more.textContent = "Loading…";
  try {
    if (reset) { state.cursor = null; state.done = false; state.seen.clear(); feed.replaceChildren(); }
    const res = await api(`/v1/users/${me.user}/feed`, { params: { algorithm: state.algorithm, limit: PAGE, cursor: state.cursor } });
    add(res.items);
    state.cursor = res.next_cursor;
    state.done = !res.next_cursor;
    more.textContent = state.done ? (feed.children.length ? "You're all caught up." : "Nothing here yet: follow someone or post.") : "";
    if (res.ranking?.fallback) say(`Showing latest posts: ranking is unavailable (${res.ranking.reason || "fallback"}).`, "info");
  } catch (err) {
    more.textContent = "";
    if (err.status === 422 && state.algorithm === "interest") more.textContent = "Interest-based ordering isn't available on this server yet.";
    else say(err.message);
    state.done = state.done || err.status === 422;
  } finally {
    state.loading = false;
    feed.setAttribute("aria-busy", "false");
  }
  // a short page leaves the sentinel in view: the observer will not fire again by itself
  if (!state.done && more.getBoundingClientRect().top < innerHeight + 400) setTimeout(page, 0);
}

async function showNew() {
  banner.hidden = true;
  state.fresh.clear();
  try {
    const res = await api(`/v1/users/${me.user}/feed`, { params: { algorithm: state.algorithm, limit: PAGE }, token: consistency.token });
    add(res.items, { top: true });
  } catch (err) {
    say(err.message);
  }
}

function live() {
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${proto}://${location.host}/v1/users/${encodeURIComponent(me.user)}/feed/live?token=${encodeURIComponent(me.token)}`);
  ws.onmessage = (ev) => {
    const msg = JSON.parse(ev.data);
    if (msg.type === "feed" && msg.op === "REMOVE") {
      feed.querySelector(`[data-post="${msg.post_id}"]`)?.remove();
    } else if (msg.type === "feed" && !state.seen.has(msg.post_id)) {
      if (msg.author_id === me.user) { showNew(); return; }
      state.fresh.add(msg.post_id);
      banner.textContent = `${state.fresh.size} new post${state.fresh.size > 1 ? "s" : ""}: show`;
      banner.hidden = false;
    } else if (msg.type === "notification") {
      unread(+1);
    }
  };
  ws.onclose = () => setTimeout(live, 3000);
  document.body.dataset.live = "connecting";
  ws.onopen = () => { document.body.dataset.live = "open"; };
}

function bump(button, delta) {
  const n = button.querySelector(".n");
  n.textContent = String(Math.max(0, Number(n.textContent) + delta));
}

// The count shown is the server's once the engagement topology has applied the like.
async function sync(postId, button, key, want, read = (post) => post.counts?.[key] ?? 0) {
  button.dataset.synced = "false";
  for (let i = 0; i < 20; i++) {
    await new Promise((r) => setTimeout(r, 500 + i * 250));
    try {
      const n = read(await api(`/v1/posts/${postId}`));
      if (want(n) || i === 19) {
        button.querySelector(".n").textContent = String(n);
        button.dataset.synced = "true";
        return;
      }
    } catch { /* the next try */ }
  }
}

async function like(postId, button) {
  const on = button.getAttribute("aria-pressed") !== "true";
  const before = Number(button.querySelector(".n").textContent);
  try {
    await api(`/v1/posts/${postId}/like`, { method: on ? "PUT" : "DELETE" });
    button.setAttribute("aria-pressed", String(on));
    bump(button, on ? 1 : -1);
    sync(postId, button, "likes", (n) => (on ? n > before : n < before));
  } catch (err) { say(err.message); }
}

async function share(postId, button) {
  try {
    await api(`/v1/posts/${postId}/shares`, { method: "POST", body: {} });
    bump(button, 1);
    say("Shared.", "info");
  } catch (err) { say(err.message); }
}

async function report(postId) {
  try {
    await api(`/v1/posts/${postId}/reports`, { method: "POST", body: { reason: "reported from the web app" } });
    say("Thanks: a moderator will review it.", "info");
  } catch (err) { say(err.message); }
}

function commentTree(items, postId, box) {
  return el("ol", { class: "comments" }, items.map((c) => el("li", {},
    el("strong", {}, c.author?.display_name || c.author_id || ""), " ", c.text || "",
    el("button", { type: "button", class: "link", onclick: () => commentForm(box, postId, c.comment_id) }, "Reply"),
    c.replies?.length ? commentTree(c.replies, postId, box) : null)));
}

function commentForm(box, postId, parent) {
  box.querySelector("form")?.remove();
  const id = `c-${postId}-${parent || 0}`;
  const form = el("form", { class: "row", onsubmit: async (e) => {
    e.preventDefault();
    const text = form.elements.text.value;
    try {
      await api(`/v1/posts/${postId}/comments`, { method: "POST", body: parent ? { text, parent_comment_id: parent } : { text } });
      form.reset();
      bump(box.closest(".post").querySelector('[data-count="comments"]'), 1);
      say("Comment posted.", "info");
    } catch (err) { say(err.message); }
  } },
  el("label", { for: id, class: "sr-only" }, parent ? "Your reply" : "Your comment"),
  el("input", { id, name: "text", required: true, maxlength: 2000, placeholder: parent ? "Reply…" : "Add a comment…" }),
  el("button", { type: "submit" }, "Send"));
  box.append(form);
  form.elements.text.focus();
}

async function comments(li, postId) {
  let box = li.querySelector(".thread");
  if (box) { box.remove(); return; }
  box = el("div", { class: "thread" });
  li.append(box);
  try {
    const res = await api(`/v1/posts/${postId}/comments`);
    box.append(commentTree(res.items || [], postId, box));
  } catch (err) { say(err.message); }
  commentForm(box, postId, null);
}

async function graph(path, method, done) {
  try { await api(`/v1/users/${me.user}/${path}`, { method }); say(done, "info"); } catch (err) { say(err.message); }
}

async function profile(userId) {
  const box = document.getElementById("profile");
  box.hidden = false;
  box.replaceChildren(el("p", {}, "Loading…"));
  try {
    const p = await api(`/v1/users/${userId}`);
    const n = p.counts || {};
    const mine = userId === me.user;
    box.replaceChildren(
      el("h2", { id: "profile-h" }, p.display_name || userId),
      el("p", { class: "handle" }, `@${p.handle || userId}`),
      el("p", {}, `${n.followers ?? 0} followers · ${n.following ?? 0} following`),
      mine ? null : el("div", { class: "actions" },
        el("button", { type: "button", onclick: () => graph(`following/${userId}`, "PUT", `You follow ${userId}.`) }, "Follow"),
        el("button", { type: "button", onclick: () => graph(`following/${userId}`, "DELETE", `You unfollowed ${userId}.`) }, "Unfollow"),
        el("button", { type: "button", onclick: () => graph(`friend-requests/${userId}`, "POST", "Friend request sent.") }, "Add friend"),
        el("button", { type: "button", class: "danger", onclick: () => block(userId) }, "Block")),
      el("button", { type: "button", class: "link", onclick: () => { box.hidden = true; } }, "Close"));
    box.querySelector("h2").tabIndex = -1;
    box.querySelector("h2").focus();
  } catch (err) { box.hidden = true; say(err.message); }
}

async function block(userId) {
  try {
    await api(`/v1/users/${me.user}/blocks/${userId}`, { method: "PUT" });
    for (const node of feed.querySelectorAll(`[data-author="${CSS.escape(userId)}"]`)) node.remove();
    say(`You blocked ${userId}: you won't see their posts.`, "info");
  } catch (err) { say(err.message); }
}

// Accept or decline a friend request from its notification (the API answers 404 if none is pending).
function friendAnswer(from) {
  const box = el("span", { class: "actions" });
  const answer = (verb, done) => async () => {
    try {
      await api(`/v1/users/${me.user}/friend-requests/${encodeURIComponent(from)}/${verb}`, { method: "POST" });
      box.replaceChildren(el("span", { class: "hint", "data-answered": verb }, ` ${done}`));
      say(done, "info");
    } catch (err) { say(err.status === 404 ? `${from}'s friend request is no longer pending.` : err.message); }
  };
  box.append(" ",
    el("button", { type: "button", "aria-label": `Accept ${from}'s friend request`, onclick: answer("accept", `You and ${from} are friends.`) }, "Accept"),
    el("button", { type: "button", class: "link", "aria-label": `Decline ${from}'s friend request`, onclick: answer("decline", `Declined ${from}'s request.`) }, "Decline"));
  return box;
}

let unreadCount = 0;
function unread(delta, absolute) {
  unreadCount = absolute ?? unreadCount + delta;
  const badge = document.getElementById("badge");
  badge.textContent = String(unreadCount);
  badge.hidden = unreadCount === 0;
  document.getElementById("bell").setAttribute("aria-label", `Notifications, ${unreadCount} unread`);
}

async function notifications() {
  const list = document.getElementById("notif-list");
  try {
    const res = await api(`/v1/users/${me.user}/notifications`, { params: { limit: 10 } });
    list.replaceChildren(...res.items.map((n) => el("li", { "data-kind": n.kind || "" },
      `${n.actor_id} ${String(n.kind || "").toLowerCase().replace(/_/g, " ")}`,
      el("span", { class: "hint" }, ` · ${ago(n.created_at)}`),
      n.kind === "FRIEND_REQUEST" ? friendAnswer(n.actor_id) : null)));
    if (!res.items.length) list.replaceChildren(el("li", { class: "hint" }, "No notifications yet."));
    const count = await api(`/v1/users/${me.user}/notifications/unread-count`);
    unread(0, count.unread);
  } catch (err) { say(err.message); }
}

async function trending() {
  const list = document.getElementById("trending");
  try {
    const res = await api("/v1/trending", { params: { kind: "hashtags", window: "1h", limit: 8 } });
    list.replaceChildren(...res.items.map((t) => el("li", {},
      el("button", { type: "button", class: "tag", onclick: () => search(`#${t.item}`) }, `#${t.item}`),
      el("span", { class: "hint" }, ` ${t.count} posts`))));
    if (!res.items.length) list.replaceChildren(el("li", { class: "hint" }, "Nothing trending yet."));
  } catch (err) { list.replaceChildren(el("li", { class: "hint" }, err.message)); }
}

async function search(q) {
  /** @type {HTMLInputElement} */ (document.getElementById("q")).value = q;
  const box = document.getElementById("results");
  box.hidden = false;
  box.replaceChildren(el("p", {}, `Searching for ${q}…`));
  try {
    const res = await api("/v1/search", { params: { q, type: "posts", limit: 10 } });
    box.replaceChildren(el("h2", {}, `Results for ${q}`),
      el("ol", { class: "feed" }, res.items.map((it) => el("li", {}, el("strong", {}, it.author_id || ""), " ", it.text || ""))),
      res.items.length ? null : el("p", { class: "hint" }, "No posts match."),
      el("button", { type: "button", class: "link", onclick: () => { box.hidden = true; } }, "Close results"));
  } catch (err) { box.replaceChildren(el("p", { role: "alert" }, err.message)); }
}

function tabs() {
  const all = /** @type {HTMLElement[]} */ ([...document.querySelectorAll('[role="tab"]')]);
  const select = (tab) => {
    for (const t of all) { t.setAttribute("aria-selected", String(t === tab)); t.tabIndex = t === tab ? 0 : -1; }
    document.getElementById("panel").setAttribute("aria-labelledby", tab.id);
    state.algorithm = tab.dataset.algorithm;
    page({ reset: true });
  };
  for (const tab of all) {
    tab.addEventListener("click", () => select(tab));
    tab.addEventListener("keydown", (/** @type {KeyboardEvent} */ e) => {
      const i = all.indexOf(tab);
      const next = e.key === "ArrowRight" ? all[(i + 1) % all.length] : e.key === "ArrowLeft" ? all[(i - 1 + all.length) % all.length] : null;
      if (next) { e.preventDefault(); next.focus(); select(next); }
    });
  }
}

if (me) {
  tabs();
  document.getElementById("compose").addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = /** @type {HTMLFormElement} */ (e.target);
    const button = /** @type {HTMLButtonElement} */ (f.querySelector("button[type=submit]"));
    button.disabled = true;
    try {
      const text = /** @type {HTMLTextAreaElement} */ (f.elements.namedItem("text")).value;
      const visibility = /** @type {HTMLSelectElement} */ (f.elements.namedItem("visibility")).value;
      const files = Array.from(/** @type {HTMLInputElement} */ (f.elements.namedItem("files")).files || []);
      if (files.length) say(`Uploading ${files.length} file(s)…`, "info");
      const media_ids = [];
      for (const file of files) media_ids.push(await upload(file));
      await api("/v1/posts", { method: "POST", body: { text, visibility, media_ids } });
      f.reset();
      say("Posted. It shows up in your feed once it is fanned out.", "info");
    } catch (err) { say(err.message); } finally { button.disabled = false; }
  });
  document.getElementById("search").addEventListener("submit", (e) => {
    e.preventDefault();
    const q = /** @type {HTMLInputElement} */ (/** @type {HTMLFormElement} */ (e.target).elements.namedItem("q")).value.trim();
    if (q) search(q);
  });
  banner.addEventListener("click", showNew);
  document.getElementById("bell").addEventListener("click", async () => {
    await notifications();
    try { await api(`/v1/users/${me.user}/notifications/read`, { method: "POST" }); unread(0, 0); } catch { /* shown next time */ }
  });
  new IntersectionObserver((entries) => { if (entries.some((x) => x.isIntersecting)) page(); }, { rootMargin: "400px" }).observe(more);
  page();
  live();
  trending();
  notifications();
  setInterval(trending, 30000);
}
