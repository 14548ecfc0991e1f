// Drives the web app in Debian's Chromium (playwright-core, one browser for every scenario) and
// prints one JSON object: {checks: {name: {ok, detail}}, axe: {page: [serious violations]}, shots: [...]}.
// Input: the JSON config file named by argv[2] (base URL, users and their tokens, artifacts dir),
// written by tests/e2e/test_web.py, which asserts on each check.
import { readFileSync, mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { chromium } from "playwright-core";

const cfg = JSON.parse(readFileSync(process.argv[2], "utf8"));
const require = createRequire(import.meta.url);
const AXE = require.resolve("axe-core/axe.min.js");
const out = { checks: {}, axe: {}, shots: [] };
const T = cfg.timeout_ms || 60000;
mkdirSync(cfg.artifacts, { recursive: true });

function check(name, ok, detail) { out.checks[name] = { ok: Boolean(ok), detail }; }

async function step(name, fn) {
  try { await fn(); } catch (err) { if (!out.checks[name]?.ok) check(name, false, String(err && err.stack || err).slice(0, 1500)); }
}

async function signedIn(browser, token, opts = {}) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, ...opts });
  await ctx.addInitScript((t) => localStorage.setItem("feedstream.token", t), token);
  ctx.setDefaultTimeout(T);
  return ctx;
}

async function shot(page, name) {
  const file = path.join(cfg.artifacts, `${name}.png`);
  await page.screenshot({ path: file, fullPage: false });
  out.shots.push(file);
}

async function axe(page, name) {
  await page.addScriptTag({ path: AXE });
  const res = await page.evaluate(async () => (await window.axe.run(document, { resultTypes: ["violations"] })).violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.length, target: v.nodes[0]?.target })));
  out.axe[name] = res;
}

const posts = (page) => page.$$eval("#feed li.post", (els) => els.map((e) => e.dataset.post));

const browser = await chromium.launch({
  executablePath: cfg.chromium || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const { alice, bob, carol, mod } = cfg.users;
  const ctxA = await signedIn(browser, alice.token);
  const ctxB = await signedIn(browser, bob.token);
  const a = await ctxA.newPage();
  const b = await ctxB.newPage();
  await Promise.all([a.goto(cfg.base + "/"), b.goto(cfg.base + "/")]);
  await b.waitForSelector("#feed li.post");
  await b.waitForFunction(() => document.body.dataset.live === "open");
  await a.waitForFunction(() => document.body.dataset.live === "open");

  await step("infinite_scroll_no_duplicates", async () => {
    const first = (await posts(b)).length;
    for (let i = 0; i < 10 && (await posts(b)).length < cfg.expect_posts; i++) {
      await b.locator("#more").scrollIntoViewIfNeeded();
      await b.waitForFunction((n) => document.querySelectorAll("#feed li.post").length > n || /caught up/.test(document.getElementById("more").textContent), (await posts(b)).length);
    }
    const ids = await posts(b);
    check("infinite_scroll_no_duplicates", first === 20 && ids.length >= cfg.expect_posts && new Set(ids).size === ids.length,
      { first_page: first, loaded: ids.length, unique: new Set(ids).size, expected: cfg.expect_posts });
    await b.evaluate(() => window.scrollTo(0, 0));
  });
  await shot(b, "feed");
  await axe(b, "feed");

  let livePost = null;
  await step("banner_then_post_without_reload", async () => {
    await b.evaluate(() => { window.__sameDocument = true; });
    const nonce = `browser-${Date.now()}`;
    await a.getByLabel("What's happening?").fill(`hello from the browser ${nonce} #webtest`);
    await a.getByRole("button", { name: "Post", exact: true }).click();
    await b.locator("#banner:not([hidden])").waitFor();
    const banner = await b.locator("#banner").textContent();
    await b.locator("#banner").click();
    const item = b.locator("#feed li.post", { hasText: nonce });
    await item.waitFor();
    livePost = await item.getAttribute("data-post");
    const same = await b.evaluate(() => window.__sameDocument === true);
    const ownFeed = await a.locator("#feed li.post", { hasText: nonce }).count();
    check("banner_then_post_without_reload", same && Boolean(livePost) && /new post/.test(banner),
      { banner, post_id: livePost, same_document: same, in_author_feed: ownFeed });
  });

  await step("like_changes_count", async () => {
    const item = b.locator(`#feed li.post[data-post="${livePost}"]`);
    const like = item.locator('[data-count="likes"]');
    const before = Number(await like.locator(".n").textContent());
    await like.click();
    await item.locator('[data-count="likes"][data-synced="true"]').waitFor();
    const after = Number(await like.locator(".n").textContent());
    const server = await b.evaluate(async (id) => (await (await fetch(`/v1/posts/${id}`, { headers: { Authorization: `Bearer ${localStorage.getItem("feedstream.token")}` } })).json()).counts.likes, livePost);
    check("like_changes_count", after === before + 1 && server === after && (await like.getAttribute("aria-pressed")) === "true",
      { before, after, server });
  });

  await step("reaction_changes_count", async () => {
    const love = b.locator(`#feed li.post[data-post="${livePost}"] [data-count="reaction-LOVE"]`);
    const before = Number(await love.locator(".n").textContent());
    await love.click();
    await b.locator(`#feed li.post[data-post="${livePost}"] [data-count="reaction-LOVE"][data-synced="true"]`).waitFor();
    const after = Number(await love.locator(".n").textContent());
    const server = await b.evaluate(async (id) => (await (await fetch(`/v1/posts/${id}`, { headers: { Authorization: `Bearer ${localStorage.getItem("feedstream.token")}` } })).json()).counts.reactions.LOVE, livePost);
    check("reaction_changes_count", after === before + 1 && server === after && (await love.getAttribute("aria-pressed")) === "true",
      { before, after, server });
  });

  await step("friend_request_accepted", async () => {
    // alice asks (through the API from her page), bob accepts from his notifications, the graph makes them friends
    const sent = await a.evaluate(async (to) => (await fetch(`/v1/users/${JSON.parse(atob(localStorage.getItem("feedstream.token").split(".")[1].replace(/-/g, "+").replace(/_/g, "/"))).sub}/friend-requests/${to}`,
      { method: "POST", headers: { Authorization: `Bearer ${localStorage.getItem("feedstream.token")}` } })).status, bob.id);
    let answered = null;
    for (let i = 0; i < 40 && !answered; i++) {  // the notification and the pending request go through Kafka
      await b.locator("#bell").click();
      const accept = b.locator('#notif-list li[data-kind="FRIEND_REQUEST"]').getByRole("button", { name: `Accept ${alice.id}'s friend request` });
      if (await accept.count()) {
        await accept.first().click();
        await b.waitForTimeout(1000);
        answered = await b.locator('#notif-list [data-answered="accept"]').count() ? "accept" : null;
      } else {
        await b.waitForTimeout(1500);
      }
    }
    let friends = false;
    for (let i = 0; i < 30 && !friends; i++) {  // the graph topology applies the accept: alice's profile shows bob as a friend
      const res = await a.evaluate(async (to) => (await fetch(`/v1/users/${to}`, { headers: { Authorization: `Bearer ${localStorage.getItem("feedstream.token")}` } })).json(), bob.id);
      friends = (res.counts?.friends ?? 0) > 0;  // bob had no friends before
      if (!friends) await a.waitForTimeout(1000);
    }
    check("friend_request_accepted", sent === 202 && answered === "accept" && friends, { sent, answered, friends });
  });

  await step("keyboard_tabs", async () => {
    await b.locator("#tab-chronological").focus();
    await b.keyboard.press("ArrowRight");
    const focused = await b.evaluate(() => document.activeElement.id);
    const selected = await b.locator("#tab-ranked").getAttribute("aria-selected");
    await b.waitForFunction(() => document.querySelectorAll("#feed li.post").length > 0);
    await b.keyboard.press("ArrowLeft");
    await b.waitForFunction(() => document.querySelectorAll("#feed li.post").length > 0);
    check("keyboard_tabs", focused === "tab-ranked" && selected === "true", { focused, selected });
  });

  await step("blocked_author_vanishes", async () => {
    const theirs = b.locator(`#feed li.post[data-author="${carol.id}"]`);
    const before = await theirs.count();
    await theirs.first().locator("button.author").click();
    await b.locator("#profile").getByRole("button", { name: "Block" }).click();
    await b.getByText(`You blocked ${carol.id}`).waitFor();
    const now = await theirs.count();
    let afterReload = -1;
    for (let i = 0; i < 30; i++) {  // the block goes through Kafka: the server filters once the graph worker applied it
      await b.reload();
      await b.waitForSelector("#feed li.post");
      afterReload = await theirs.count();
      if (afterReload === 0) break;
      await b.waitForTimeout(1000);
    }
    check("blocked_author_vanishes", before > 0 && now === 0 && afterReload === 0, { before, now, after_reload: afterReload });
  });

  await step("moderator_hides_post", async () => {
    await b.locator(`#feed li.post[data-post="${livePost}"]`).getByRole("button", { name: "Report" }).click();
    await b.getByText("a moderator will review it").waitFor();
    const notMod = await b.evaluate(() => [...document.querySelectorAll("#nav a")].map((x) => x.textContent));
    const ctxM = await signedIn(browser, mod.token);
    const m = await ctxM.newPage();
    let found = false;
    for (let i = 0; i < 40 && !found; i++) {
      await m.goto(cfg.base + "/moderation");
      await m.waitForSelector("#queue li");
      found = (await m.locator(`#queue li[data-post="${livePost}"]`).count()) > 0;
      if (!found) await m.waitForTimeout(1000);
    }
    await shot(m, "moderation");
    await axe(m, "moderation");
    const card = m.locator(`#queue li[data-post="${livePost}"]`);
    await card.getByLabel("Reason").fill("harassment (browser test)");
    await card.getByRole("button", { name: "Remove" }).click();
    await card.locator('[data-decided="REMOVE"], .state:has-text("REMOVE")').first().waitFor();
    let gone = false;
    for (let i = 0; i < 30 && !gone; i++) {
      await b.reload();
      await b.waitForSelector("#feed li.post");
      gone = (await b.locator(`#feed li.post[data-post="${livePost}"]`).count()) === 0;
      if (!gone) await b.waitForTimeout(1000);
    }
    // a non-moderator is told so on the console page
    const denied = await b.goto(cfg.base + "/moderation").then(() => b.getByText("Only moderators can see this console.").waitFor()).then(() => true, () => false);
    check("moderator_hides_post", found && gone && !notMod.includes("Moderation") && denied,
      { in_queue: found, gone_on_refresh: gone, nav_of_non_moderator: notMod, non_moderator_refused: denied });
    await ctxM.close();
  });

  await step("human_errors", async () => {
    await b.goto(cfg.base + "/");
    await b.waitForSelector("#feed li.post");
    await b.route("**/v1/posts", (r) => r.fulfill({ status: 429, headers: { "Retry-After": "7", "Content-Type": "application/json" }, body: '{"detail":"rate limit exceeded"}' }));
    await b.getByLabel("What's happening?").fill("too fast");
    await b.getByRole("button", { name: "Post", exact: true }).click();
    const limited = await b.getByRole("alert").filter({ hasText: "Try again in 7 s" }).first().textContent();
    await b.unroute("**/v1/posts");
    await b.route("**/v1/posts", (r) => r.fulfill({ status: 503, headers: { "Retry-After": "2", "Content-Type": "application/json" }, body: '{"detail":"Kafka unavailable"}' }));
    await b.getByRole("button", { name: "Post", exact: true }).click();
    const down = await b.getByRole("alert").filter({ hasText: "nothing was changed" }).first().textContent();
    await b.unroute("**/v1/posts");
    const removed = await b.evaluate(async (id) => {
      const res = await fetch(`/v1/posts/${id}`, { headers: { Authorization: `Bearer ${localStorage.getItem("feedstream.token")}` } });
      const { humanError } = await import("/app/common.js");
      return [res.status, humanError(res.status, await res.json(), res.headers.get("Retry-After"))];
    }, livePost);
    check("human_errors", /Try again in 7 s/.test(limited) && /nothing was changed/.test(down) && removed[0] === 403 && /removed by moderation/.test(removed[1]),
      { limited, down, removed });
  });

  await step("phone_viewport", async () => {
    const ctxP = await signedIn(browser, bob.token, { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
    const p = await ctxP.newPage();
    await p.goto(cfg.base + "/");
    await p.waitForSelector("#feed li.post");
    const widths = await p.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
    await shot(p, "feed-phone");
    check("phone_viewport", widths[0] <= widths[1], { scroll_width: widths[0], viewport: widths[1] });
    await ctxP.close();
  });

  await step("dashboard_throughput", async () => {
    const d = await ctxB.newPage();
    await d.goto(cfg.base + "/dashboard");
    await d.waitForSelector('[data-topology="fanout"]');
    const traffic = a.evaluate(async (n) => {
      const h = { Authorization: `Bearer ${localStorage.getItem("feedstream.token")}`, "Content-Type": "application/json" };
      for (let i = 0; i < n; i++) {
        await fetch("/v1/posts", { method: "POST", headers: h, body: JSON.stringify({ text: `dashboard traffic ${i} #webtest` }) });
        await new Promise((r) => setTimeout(r, 250));
      }
    }, cfg.traffic_posts || 20);
    await d.waitForFunction(() => [...document.querySelectorAll('[data-topology="fanout"] [data-metric="throughput"]')].some((x) => Number(x.textContent) > 0));
    const rates = await d.$$eval("[data-topology]", (els) => Object.fromEntries(els.map((e) => [e.dataset.topology, Number(e.querySelector('[data-metric="throughput"]').textContent)])));
    await shot(d, "dashboard");
    await traffic;
    await axe(d, "dashboard");
    check("dashboard_throughput", rates.fanout > 0, rates);
  });

  await step("photo_upload_shows_in_follower_feed", async () => {
    // alice attaches a PNG in the compose form: declared, sent straight to the object store, handed
    // to the media worker; bob's feed then shows the processed variant (a real image load)
    const nonce = `photo-${Date.now()}`;
    await a.getByLabel("What's happening?").fill(`a picture ${nonce}`);
    await a.locator("#files").setInputFiles(cfg.photo);
    await a.getByRole("button", { name: "Post", exact: true }).click();
    await a.locator("#messages", { hasText: "Posted" }).waitFor();
    const p = await ctxB.newPage();
    let shown = null;
    for (let i = 0; i < 40 && !shown; i++) {
      await p.goto(cfg.base + "/");
      const item = p.locator("#feed li.post", { hasText: nonce });
      try { await item.waitFor({ timeout: 5000 }); } catch { continue; }
      const img = item.locator(".media picture img");
      if (await img.count()) {
        await p.waitForFunction((sel) => { const el = document.querySelector(sel); return el && el.complete; },
          `#feed li.post[data-post="${await item.getAttribute("data-post")}"] .media picture img`);
        shown = await img.evaluate((el) => ({ width: el.naturalWidth, height: el.naturalHeight, src: el.currentSrc }));
      } else {
        await p.waitForTimeout(1000);
      }
    }
    if (shown) await shot(p, "feed-photo");
    await p.close();
    check("photo_upload_shows_in_follower_feed", shown && shown.width === 480 && /\/w480\.(avif|webp)$/.test(shown.src), shown);
  });
} finally {
  await browser.close();
  process.stdout.write(JSON.stringify(out));
}
