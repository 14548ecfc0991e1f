"""What observability costs the hot paths: API variants side by side, in one run, as ratios.

Seeds the stores like :mod:`bench.capacity`, then starts one API process per variant on the same
stack (default: ``metrics`` = as shipped, ``no-metrics`` = ``FEEDSTREAM_API_METRICS=false``,
``tracing`` = as shipped plus OpenTelemetry spans written to a file) and drives each endpoint
(the no-op ceiling, the feed's first page, ``POST /v1/posts``) closed-loop at saturation with wrk,
one variant after the other, for ``--rounds`` interleaved rounds, so drift of the shared machine
falls on every variant alike. Per variant and endpoint: the median API CPU ms per request and
2xx/s over the rounds; the cost of a variant is its CPU per request over the first variant's.

    python -m bench.obs_cost --rounds 3 --step 4 --connections 8
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from bench.capacity import LIMITS_ENV, Driver, endpoints, prepare
from bench.report import RESULTS_DIR, machine_info

VARIANTS: dict[str, dict[str, str]] = {
    "metrics": {},
    "no-metrics": {"FEEDSTREAM_API_METRICS": "false"},
    "tracing": {"FEEDSTREAM_TRACING_EXPORTER": "file"},  # + FEEDSTREAM_TRACING_FILE (a temp file)
}
ENDPOINTS = ("noop", "feed", "post_create")


def ratio(a: float | None, b: float | None) -> float | None:
    """``a / b`` rounded, or None when either is missing."""
    return round(a / b, 3) if a and b else None


def summarise(samples: dict[str, dict[str, list[tuple[float, float | None]]]], base: str) -> dict[str, Any]:
    """Medians per variant and endpoint, and each variant's ratios to ``base`` (CPU/req, rate)."""
    out: dict[str, Any] = {}
    for variant, per_ep in samples.items():
        out[variant] = {}
        for ep, runs in per_ep.items():
            cpu = [c for _, c in runs if c]
            out[variant][ep] = {"rate_per_s": round(statistics.median(r for r, _ in runs), 1),
                                "cpu_ms_per_req": round(1000 * statistics.median(cpu), 4) if cpu else None,
                                "cpu_ms_range": [round(1000 * min(cpu), 4), round(1000 * max(cpu), 4)] if cpu else None,
                                "rounds": len(runs)}
    for variant, per_ep in out.items():
        for ep, fig in per_ep.items():
            ref = out[base][ep]
            fig["cpu_vs_" + base] = ratio(fig["cpu_ms_per_req"], ref["cpu_ms_per_req"])
            fig["rate_vs_" + base] = ratio(fig["rate_per_s"], ref["rate_per_s"])
    return out


def run(args: argparse.Namespace, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Seed, start the variants, drive them round-robin; the report (also saved as JSON)."""
    from bench.read_api import KEYSPACE, bench_settings
    from bench.write_api import _free_port, start_server
    from serving.auth import mint_token
    from stores import posts as post_store
    from stores import redis as redis_store

    s = bench_settings()
    shape = prepare(s, args)
    readers = shape.pop("readers")
    r = redis_store.client(s)
    authors = [f"ba{i}" for i in range(args.authors)]
    post_ids = sorted({int(p) for a in authors[:10] for p in r.zrevrange(post_store.k_author(a), 0, 9)})
    r.close()
    spans = Path(tempfile.mkdtemp(prefix="obs-cost-")) / "spans.jsonl"
    common = LIMITS_ENV | {"FEEDSTREAM_KEYSPACE": KEYSPACE, "FEEDSTREAM_REDIS_URL": s.redis_url,
                           "FEEDSTREAM_CELEBRITY_THRESHOLD": str(len(readers) - 1),
                           "FEEDSTREAM_TRACING_FILE": str(spans)}
    tokens = {u: mint_token(u, s, 3600) for u in readers}
    servers, drivers = {}, {}
    try:
        for name in args.variants:
            port = _free_port()
            servers[name] = start_server(port, common | VARIANTS[name])
            drivers[name] = Driver(f"http://127.0.0.1:{port}", servers[name].pid, args.step, 0, f"obs-{name}-{int(time.time())}")
            echo(f"{name}: API pid {servers[name].pid} on port {port}")
        base_url = next(iter(drivers.values())).base_url
        with httpx.Client(base_url=base_url, timeout=30) as c:
            cursors = {rd: c.get(f"/v1/users/{rd}/feed", params={"limit": 20},
                                 headers={"Authorization": f"Bearer {tokens[rd]}"}).json()["next_cursor"]
                       for rd in readers}
        eps = {e.name: e for e in endpoints(tokens, readers, authors, post_ids, cursors, 20, random.Random(11))}
        samples: dict[str, dict[str, list[tuple[float, float | None]]]] = {v: {e: [] for e in args.endpoints}
                                                                         for v in args.variants}
        for rnd in range(args.rounds):
            for ep in args.endpoints:
                order = args.variants if rnd % 2 == 0 else list(reversed(args.variants))  # no variant always first
                for name in order:
                    st = drivers[name].step(eps[ep], args.connections)
                    samples[name][ep].append((st.rate_per_s, st.cpu_per_req_s))
                    echo(f"  round {rnd + 1} {ep:<12} {name:<11} {st.rate_per_s:8.0f}/s "
                         f"{1000 * (st.cpu_per_req_s or 0):7.3f} ms CPU/req")
    finally:
        for proc in servers.values():
            proc.terminate()
            proc.wait(30)
    figs = summarise(samples, args.variants[0])
    report = {"scenario": "obs_cost", "started_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "machine": machine_info(),
              "loadavg": os.getloadavg(), "dataset": shape, "variants": {v: VARIANTS[v] for v in args.variants},
              "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
              "figures": figs, "traced_spans_written": sum(1 for _ in spans.open()) if spans.exists() else 0,
              "how": f"wrk -t1 closed loop at {args.connections} connections, {args.step}s a step, variants "
                     f"round-robin for {args.rounds} rounds; CPU from /proc/<api pid>/stat"}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"obs-cost-{args.tag}.json"
    path.write_text(json.dumps(report, indent=1))
    echo(summary(report))
    echo(f"saved {path}")
    return report


def summary(report: dict[str, Any]) -> str:
    """The A/B table as text."""
    base = report["config"]["variants"][0]
    lines = [(f"{'endpoint':<12} {'variant':<11} {'2xx/s':>8} {'CPU ms/req':>10} {'(min-max)':>13} "
              f"{'CPU x ' + base:>12} {'rate x ' + base:>13}")]
    for variant, per_ep in report["figures"].items():
        for ep, f in per_ep.items():
            lo, hi = f["cpu_ms_range"] or (0, 0)
            lines.append(f"{ep:<12} {variant:<11} {f['rate_per_s']:>8.0f} {f['cpu_ms_per_req'] or 0:>10.3f} "
                         f"{f'{lo:.2f}-{hi:.2f}':>13} {f['cpu_vs_' + base] or 0:>12.3f} {f['rate_vs_' + base] or 0:>13.3f}")
    lines.append(f"load average at the end: {' '.join(f'{x:.1f}' for x in report['loadavg'])}")
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.obs_cost", description=__doc__.split("\n\n")[0])
    p.add_argument("--variants", type=lambda v: v.split(","), default=list(VARIANTS),
                   help=f"comma-separated, the first is the reference (of {', '.join(VARIANTS)})")
    p.add_argument("--endpoints", type=lambda v: v.split(","), default=list(ENDPOINTS))
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds per endpoint and variant")
    p.add_argument("--step", type=float, default=4.0, help="seconds per wrk run")
    p.add_argument("--connections", type=int, default=8, help="wrk connections (closed loop)")
    p.add_argument("--readers", type=int, default=200)
    p.add_argument("--authors", type=int, default=100)
    p.add_argument("--posts-per-author", type=int, default=20)
    p.add_argument("--follows", type=int, default=30)
    p.add_argument("--celebrities", type=int, default=2)
    p.add_argument("--tag", default="latest", help="names the JSON file")
    p.add_argument("--out", type=Path, default=RESULTS_DIR)
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Parse arguments and run."""
    args = parser().parse_args(argv)
    unknown = sorted(set(args.variants) - set(VARIANTS))
    if unknown:
        raise SystemExit(f"unknown variant(s) {unknown}; choose from {list(VARIANTS)}")
    return run(args)


if __name__ == "__main__":
    main()
