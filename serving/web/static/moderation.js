// The moderator's console: the review queue with scores and context, decisions, reports, appeals and
// the audit trail of each item. Only tokens with the moderator role get past the API (403 otherwise).
import { api, ago, el, frame, say } from "./common.js";

const me = frame("/moderation");
const queue = document.getElementById("queue");
const older = document.getElementById("older");
let after = null;

function scores(model) {
  if (!model?.scores) return el("p", { class: "hint" }, "No model verdict yet.");
  return el("dl", { class: "scores" }, Object.entries(model.scores).flatMap(([k, v]) => [
    el("dt", {}, k),
    el("dd", {}, el("meter", { min: 0, max: 1, value: v, "aria-label": `${k} score` }), ` ${Number(v).toFixed(2)}`)]));
}

function audit(item) {
  const rows = [];
  if (item.model) rows.push(el("li", {}, `Model: ${item.model.decision}${item.model.reasons?.length ? ` (${item.model.reasons.join(", ")})` : ""}`));
  if (item.reports) rows.push(el("li", {}, `${item.reports} report${item.reports > 1 ? "s" : ""} from users`));
  if (item.appeal) rows.push(el("li", {}, `Appealed by the author: “${item.appeal.reason || ""}”`));
  if (item.moderator) rows.push(el("li", {}, `Decided ${item.moderator.decision} by ${item.moderator.by || "a moderator"}: “${item.moderator.reason || ""}”`));
  return el("ul", { class: "audit", "aria-label": "Audit trail" }, rows);
}

function card(item) {
  const id = item.post_id;
  const reason = `reason-${id}`;
  const decide = async (decision) => {
    const why = /** @type {HTMLInputElement} */ (document.getElementById(reason)).value.trim();
    if (!why) { say("Give a reason: the author sees it and it is kept in the audit trail."); document.getElementById(reason).focus(); return; }
    try {
      await api(`/v1/moderation/posts/${id}/decision`, { method: "POST", body: { decision, reason: why } });
      li.dataset.decided = decision;
      li.querySelector(".state").textContent = `Decision sent: ${decision}`;
      say(`Post ${id}: ${decision.toLowerCase()} sent.`, "info");
    } catch (err) { say(err.message); }
  };
  const li = el("li", { class: "card", "data-post": id },
    el("article", { "aria-label": `Post ${id} by ${item.author_id}` },
      el("header", {}, el("strong", {}, item.author_id || ""), el("span", { class: "hint" }, ` · queued ${ago(item.queued_at)} ago · post ${id}`)),
      el("p", { class: "text" }, item.text || "(no text)"),
      scores(item.model), audit(item),
      el("div", { class: "row" },
        el("label", { for: reason }, "Reason"),
        el("input", { id: reason, maxlength: 2000, placeholder: "e.g. spam, harassment, a film quote" }),
        el("button", { type: "button", onclick: () => decide("ALLOW") }, "Allow"),
        el("button", { type: "button", onclick: () => decide("LIMIT") }, "Limit"),
        el("button", { type: "button", class: "danger", onclick: () => decide("REMOVE") }, "Remove")),
      el("p", { class: "state", role: "status" })));
  return li;
}

async function load() {
  try {
    const res = await api("/v1/moderation/queue", { params: { limit: 100, after } });
    queue.append(...res.items.filter((it) => it.post_id).map(card));
    after = res.next_after;
    older.hidden = after === null;
    if (!queue.children.length) queue.append(el("li", { class: "hint" }, "The queue is empty."));
  } catch (err) {
    queue.replaceChildren(el("li", { role: "alert" }, err.status === 403 ? "Only moderators can see this console." : err.message));
  }
}

if (me) {
  older.addEventListener("click", load);
  load();
}
