"""Write API benchmark: sustained ``POST /v1/posts`` vs the same server's ``/v1/_bench/noop``, same run.

Starts its own uvicorn server on loopback against the running stack (``feedstream local up``),
drives both endpoints closed-loop with the same client and concurrency, and reports req/s and
p50/p99/max latency with write/noop ratios. Bounded by ``--duration`` and ``--max-requests`` per
phase. Writes JSON and a PNG under ``bench/results/``.

    python -m bench.write_api --duration 10 --concurrency 1,16
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from bench.ceilings import closed_loop
from bench.report import RESULTS_DIR, machine_info, summarize
from core.settings import get_settings
from serving.auth import mint_token

P99_BOUND_MS = 100.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, env: dict[str, str], ready_s: float = 240.0,
                 server: str = "uvicorn", tree: Path | None = None) -> subprocess.Popen:
    """Start ``python -m serving.main --server SERVER`` on loopback and wait until /readyz answers 200;
    ``tree``: run that source tree's code instead (its own cwd and PYTHONPATH; ``bench.ab_api``)."""
    cmd = [sys.executable, "-m", "serving.main", "--host", "127.0.0.1", "--port", str(port),
           "--no-access-log", "--log-level", "warning", "--server", server]
    own = {"PYTHONPATH": str(tree)} if tree is not None else {}
    proc = subprocess.Popen(cmd, env={**os.environ, **env, **own}, cwd=tree)
    deadline = time.monotonic() + ready_s  # a loaded shared machine can take a minute to import
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"API server exited with {proc.returncode}; is the stack up (`feedstream local up`)?")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.terminate()
    raise SystemExit(f"API server not ready within {ready_s:.0f}s (Kafka, registry and Redis must be up)")


async def run_phase(name: str, client: httpx.AsyncClient, request: Any, concurrency: int,
                    duration_s: float, max_requests: int, warmup_s: float) -> dict[str, Any]:
    """Warm up, then drive ``request(i)`` closed-loop; return stats and raw latencies."""
    statuses: dict[int, int] = {}

    async def call(i: int) -> tuple[bool, str]:
        try:
            r = await request(i)
        except httpx.HTTPError as exc:
            statuses[-1] = statuses.get(-1, 0) + 1
            return False, type(exc).__name__
        statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
        return r.status_code in (200, 202), name

    await closed_loop(call, concurrency, warmup_s, max_requests, time.perf_counter())
    statuses.clear()
    t0 = time.perf_counter()
    samples = await closed_loop(call, concurrency, duration_s, max_requests, t0)
    stats = summarize(samples, time.perf_counter() - t0)
    stats["statuses"] = statuses
    stats["latencies_ms"] = [round(s.latency_s * 1000, 3) for s in samples if s.ok]
    return stats


async def drive(base: str, tokens: list[str], args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    top = max(args.concurrency)
    limits = httpx.Limits(max_connections=top, max_keepalive_connections=top)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        for i, token in enumerate(tokens):  # only registered users write
            r = await client.post("/v1/users", json={"user_id": f"bench-{i}", "handle": f"bench_{i}",
                                                     "display_name": f"Bench {i}"},
                                  headers={"Authorization": f"Bearer {token}"})
            r.raise_for_status()

        async def noop(i: int) -> httpx.Response:
            return await client.get("/v1/_bench/noop")

        async def write(i: int) -> httpx.Response:
            headers = {"Authorization": f"Bearer {tokens[i % len(tokens)]}"}
            if args.idempotency:
                headers["Idempotency-Key"] = uuid.uuid4().hex
            return await client.post("/v1/posts", json={"text": f"bench post {i} #bench"}, headers=headers)

        out = {}
        for concurrency in args.concurrency:
            for name, request in (("noop", noop), ("write", write)):
                out[f"{name}@{concurrency}"] = await run_phase(name, client, request, concurrency, args.duration,
                                                               args.max_requests, args.warmup)
        return out


def plot(phases: dict[str, dict[str, Any]], path: Path) -> None:
    """Latency CDFs of both phases on one log-x chart."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, stats in phases.items():
        xs = sorted(stats["latencies_ms"])
        if xs:
            ax.plot(xs, [(i + 1) / len(xs) for i in range(len(xs))],
                    label=f"{name}: {stats['rate_per_s']:.0f} req/s, p99 {stats['latency_ms']['p99']:.1f} ms")
    ax.axvline(P99_BOUND_MS, color="red", linestyle="--", linewidth=1, label="p99 bound 100 ms")
    ax.set_xscale("log")
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("fraction of requests")
    ax.set_title("write API vs framework-only endpoint (same server, same run)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark and print the figures."""
    p = argparse.ArgumentParser(prog="python -m bench.write_api", description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=10.0, help="seconds measured per phase")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of unmeasured warm-up per phase")
    p.add_argument("--max-requests", type=int, default=50_000, help="request cap per phase")
    p.add_argument("--concurrency", type=lambda v: [int(x) for x in v.split(",")], default=[1, 16],
                   help="comma-separated requests-in-flight levels, each run for both phases (default: 1,16)")
    p.add_argument("--users", type=int, default=64, help="distinct authors (tokens)")
    p.add_argument("--idempotency", action=argparse.BooleanOptionalAction, default=True,
                   help="send a fresh Idempotency-Key with every write (default: on)")
    p.add_argument("--out", type=Path, default=RESULTS_DIR, help="directory for JSON and PNG")
    args = p.parse_args(argv)

    settings = get_settings()
    port = _free_port()
    # limits are on (a Redis round trip per write) but sized so the benchmark measures throughput
    env = {"FEEDSTREAM_API_RATE_USER_PER_S": "100000", "FEEDSTREAM_API_RATE_USER_BURST": "100000",
           "FEEDSTREAM_API_RATE_IP_PER_S": "1000000", "FEEDSTREAM_API_RATE_IP_BURST": "1000000"}
    tokens = [mint_token(f"bench-{i}", settings, 3600) for i in range(args.users)]
    server = start_server(port, env)
    try:
        phases = asyncio.run(drive(f"http://127.0.0.1:{port}", tokens, args))
    finally:
        server.terminate()
        server.wait(30)

    ratios = {}
    for c in args.concurrency:
        noop, write = phases[f"noop@{c}"], phases[f"write@{c}"]
        ratios[c] = {"throughput": write["rate_per_s"] / noop["rate_per_s"] if noop["rate_per_s"] else None,
                     "p50_latency": write["latency_ms"]["p50"] / noop["latency_ms"]["p50"],
                     "p99_latency": write["latency_ms"]["p99"] / noop["latency_ms"]["p99"],
                     "write_p99_within_bound": write["latency_ms"]["p99"] < P99_BOUND_MS}
    report = {"scenario": "write_api", "started_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
              "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
              "machine": machine_info(),
              "what": {"write": "POST /v1/posts: JWT, Redis token bucket, Idempotency-Key claim+store, ownership "
                                "SET, Avro produce to posts.v1 awaited until acks=all confirm",
                       "noop": "GET /v1/_bench/noop on the same server (framework-only ceiling)"},
              "phases": {k: {kk: vv for kk, vv in v.items() if kk != "latencies_ms"} for k, v in phases.items()},
              "ratio_write_to_noop": ratios, "p99_bound_ms": P99_BOUND_MS,
              "load_average_at_end": os.getloadavg()}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "write_api.json").write_text(json.dumps(report, indent=1))
    plot(phases, args.out / "write_api.png")

    print(f"{'phase':<10} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'errors':>7}  statuses")
    for name, s in phases.items():
        lat = s["latency_ms"]
        print(f"{name:<10} {s['rate_per_s']:>9.0f} {lat['p50']:>8.2f} {lat['p99']:>8.2f} {lat['max']:>8.2f} "
              f"{s['errors']:>7}  {s['statuses']}")
    for c, r in ratios.items():
        p99 = phases[f"write@{c}"]["latency_ms"]["p99"]
        print(f"concurrency {c}: write/noop throughput x{r['throughput']:.2f}, p50 x{r['p50_latency']:.2f}, "
              f"p99 x{r['p99_latency']:.2f}; write p99 {p99:.1f} ms "
              f"{'<' if r['write_p99_within_bound'] else '>='} {P99_BOUND_MS:.0f} ms bound")
    print(f"client and server share this machine's {os.cpu_count()} cores; load average at end "
          f"{os.getloadavg()[0]:.1f}")
    print(f"saved {args.out / 'write_api.json'} and {args.out / 'write_api.png'}")
    return report


if __name__ == "__main__":
    main()
