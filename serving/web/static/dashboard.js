// The pipeline dashboard: per topology, throughput and lag as live sparklines, dead letters and
// write→visible freshness; the trending job's current windows as bar charts. Polls /v1/web/status.
import { api, el, frame, say } from "./common.js";

const me = frame("/dashboard");
const POLL_MS = 2000;
const KEEP = 60;  // samples per sparkline (2 minutes)
const history = new Map();  // topology -> [{t, processed, lag, rate}]
const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

function sparkline(values, label) {
  const w = 240, h = 48, max = Math.max(1, ...values);
  const pts = values.map((v, i) => `${(i / Math.max(1, values.length - 1)) * w},${h - (v / max) * (h - 4) - 2}`).join(" ");
  const chart = svg("svg", { viewBox: `0 0 ${w} ${h}`, width: "100%", height: h, role: "img", "aria-label": label });
  chart.append(svg("polyline", { points: pts, fill: "none", stroke: "currentColor", "stroke-width": 2 }));
  return chart;
}

function seconds(s) { return s === null || s === undefined ? "–" : s < 1 ? `${Math.round(s * 1000)} ms` : `${s.toFixed(1)} s`; }

function topologyCard(row) {
  const samples = history.get(row.name) || [];
  const last = samples[samples.length - 1] || {};
  const rate = last.rate ?? 0;
  const f = row.freshness || {};
  const up = row.state === "up" && row.live !== false;
  return el("section", { class: "card topo", "data-topology": row.name, "aria-labelledby": `t-${row.name}` },
    el("h3", { id: `t-${row.name}` }, row.name, " ", el("span", { class: `pill ${up ? "ok" : "bad"}` }, up ? "live" : row.state === "up" ? "not live" : "down")),
    el("p", {}, el("span", { class: "big", "data-metric": "throughput" }, rate.toFixed(1)), " events/s"),
    sparkline(samples.map((x) => x.rate ?? 0), `${row.name} throughput, last ${KEEP * POLL_MS / 1000} s`),
    el("p", {}, "Lag ", el("strong", { "data-metric": "lag" }, String(row.lag ?? "–")), " records"),
    sparkline(samples.map((x) => x.lag ?? 0), `${row.name} consumer lag`),
    el("p", {}, "Dead letters ", el("strong", { "data-metric": "dead", class: row.dead_letters ? "warn" : "" }, String(row.dead_letters ?? "–"))),
    el("p", {}, "Write→visible p50 ", el("strong", {}, seconds(f.p50_s)), " · p95 ", el("strong", { "data-metric": "p95" }, seconds(f.p95_s)),
      el("span", { class: "hint" }, ` (${f.count ?? 0} events)`)),
    el("p", { class: "hint" }, `${row.processed ?? 0} events applied since the worker started`));
}

function windowCard(w) {
  const max = Math.max(1, ...w.items.map((i) => i.count));
  const span = w.window_start && w.window_end ? `${new Date(w.window_start).toLocaleTimeString()}–${new Date(w.window_end).toLocaleTimeString()}` : "no window emitted yet";
  return el("section", { class: "card", "aria-label": `Trending, ${w.window} window` },
    el("h3", {}, `${w.window} window`), el("p", { class: "hint" }, span),
    el("ol", { class: "bars" }, w.items.map((i) => el("li", {},
      el("span", { class: "bar-label" }, `#${i.item}`),
      el("span", { class: "bar", style: `width:${Math.round((i.count / max) * 100)}%` }),
      el("span", { class: "bar-n" }, String(i.count))))));
}

async function tick() {
  try {
    const res = await api("/v1/web/status");
    for (const row of res.topologies) {
      const samples = history.get(row.name) || [];
      const prev = samples[samples.length - 1];
      const rate = prev && row.processed !== undefined ? Math.max(0, (row.processed - prev.processed) / ((res.at_ms - prev.t) / 1000 || 1)) : 0;
      samples.push({ t: res.at_ms, processed: row.processed ?? 0, lag: row.lag ?? 0, rate });
      history.set(row.name, samples.slice(-KEEP));
    }
    const box = document.getElementById("topologies");
    box.replaceChildren(...res.topologies.map(topologyCard));
    if (!res.topologies.length) box.append(el("p", { class: "hint" }, "No topology worker has published its metrics (is the stack up? `feedstream up`)."));
    document.getElementById("trending").replaceChildren(...res.trending.map(windowCard));
    document.getElementById("updated").textContent = `Updated ${new Date(res.at_ms).toLocaleTimeString()}.`;
  } catch (err) {
    say(err.message);
  }
}

if (me) {
  tick();
  setInterval(tick, POLL_MS);
}
