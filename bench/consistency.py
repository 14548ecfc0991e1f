"""Read-your-writes benchmark: what consistency tokens cost on reads and the user-data design on writes.

Runs the four Faust topologies as subprocesses on their own keyspace, Redis database and consumer
groups against the running stack (``feedstream local up``), and two in-process API apps on it: one
as today (``consistency_own_reads`` off: no per-user positions, no own-read wait) and one with the
design (on). Requests alternate between the two in the same run, sequentially (concurrency 1), so
each figure is a ratio to its baseline measured alongside it:

- write: ``POST /v1/posts`` (no Idempotency-Key) with vs without recording the user's position;
- read: ``GET /v1/users/{me}`` and ``GET /v1/users/{me}/feed`` with an already-applied token (the
  added cost of the check: one Redis round trip) vs without;
- write then read: ``PATCH`` the profile, then at once ``GET`` it (own data: waits for the users
  topology) - the latency a client sees for a read of its own write, and how often it was satisfied.

    python -m bench.consistency --iterations 300
"""

from __future__ import annotations

import argparse
import json
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from bench.report import RESULTS_DIR, latency_ms, machine_info
from core.settings import Settings, get_settings, isolated, with_overrides
from ops.workers import workers
from serving.app import create_app
from serving.auth import mint_token
from serving.consistency import HEADER
from stores import progress
from stores import redis as redis_store
from streams.admin import apply_all

TOPOLOGIES = ("users", "graph", "fanout", "engagement")


def _timed(fn: Callable[[], Any], into: list[float]) -> Any:
    t = time.perf_counter()
    out = fn()
    into.append(time.perf_counter() - t)
    return out


def _ok(r: Any, code: int) -> dict[str, Any]:
    if r.status_code != code:
        raise SystemExit(f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text[:200]}")
    return r.json()


def measure(on: TestClient, off: TestClient, settings: Settings, n: int) -> dict[str, list[float]]:
    """Alternate every pair of requests between the design (``on``) and today (``off``)."""
    me = f"bryw{uuid.uuid4().hex[:10]}"
    h = {"Authorization": f"Bearer {mint_token(me, settings, 3600)}"}
    token = _ok(on.post("/v1/users", json={"user_id": me, "handle": me, "display_name": "B"}, headers=h), 202)[
        "consistency_token"]
    _ok(on.get(f"/v1/users/{me}", headers={**h, HEADER: token}), 200)
    lat: dict[str, list[float]] = {k: [] for k in ("write_off", "write_on", "profile_off", "profile_token",
                                                   "feed_off", "feed_token", "write_then_read")}
    satisfied = 0
    for i in range(n):
        for name, client in (("write_off", off), ("write_on", on)) if i % 2 else (("write_on", on), ("write_off", off)):
            body = _ok(_timed(lambda c=client, k=i: c.post("/v1/posts", json={"text": f"b {k}"}, headers=h),
                              lat[name]), 202)
            token = body.get("consistency_token", token)
    _ok(on.get(f"/v1/users/{me}/feed", headers={**h, HEADER: token}), 200)  # applied from here on
    for i in range(n):
        pairs = [("profile_off", off, f"/v1/users/{me}", {}), ("profile_token", on, f"/v1/users/{me}", {HEADER: token}),
                 ("feed_off", off, f"/v1/users/{me}/feed", {}), ("feed_token", on, f"/v1/users/{me}/feed", {HEADER: token})]
        for name, client, path, extra in pairs if i % 2 else pairs[::-1]:
            _ok(_timed(lambda c=client, p=path, x=extra: c.get(p, headers={**h, **x}), lat[name]), 200)
    for i in range(n):
        _ok(on.patch(f"/v1/users/{me}", json={"bio": f"bio {i}"}, headers=h), 202)
        got = _ok(_timed(lambda: on.get(f"/v1/users/{me}", headers=h), lat["write_then_read"]), 200)
        satisfied += got["bio"] == f"bio {i}" and got["consistency"]["satisfied"]
    lat["satisfied"] = [float(satisfied)]
    return lat


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark on the running stack and print the figures."""
    p = argparse.ArgumentParser(prog="python -m bench.consistency", description=__doc__.split("\n\n")[0])
    p.add_argument("--iterations", type=int, default=300, help="requests per figure (bounded)")
    p.add_argument("--out", type=Path, default=RESULTS_DIR, help="directory for the JSON")
    args = p.parse_args(argv)
    base = get_settings()
    apply_all(base, echo=lambda *_: None)
    s = isolated(base, "fs_bench_ryw", 13)
    redis_store.client(s).flushdb()
    suffix = f"-bryw-{uuid.uuid4().hex[:8]}"
    common = {"topology_group_suffix": suffix, "api_rate_limit_enabled": False}
    on_s = with_overrides(s, **common)
    off_s = with_overrides(s, consistency_own_reads=False, **common)
    logs = base.state_dir / "logs" / "bench-consistency"
    with workers(s, TOPOLOGIES, log_dir=logs, topology_group_suffix=suffix, topology_offset_reset="latest"), \
            TestClient(create_app(on_s)) as on, TestClient(create_app(off_s)) as off:
        deadline = time.monotonic() + 180
        r = redis_store.client(s)
        while not all(r.exists(progress.key(t)) for t in TOPOLOGIES):  # every worker joined and applied
            if time.monotonic() > deadline:
                raise SystemExit(f"workers did not join within 180 s; see {logs}")
            probe, peer = (f"probe{uuid.uuid4().hex[:8]}" for _ in range(2))
            h = {"Authorization": f"Bearer {mint_token(probe, on_s, 3600)}"}
            for u in (probe, peer):
                on.post("/v1/users", json={"user_id": u, "handle": u, "display_name": "P"},
                        headers={"Authorization": f"Bearer {mint_token(u, on_s, 3600)}"})
            pid = on.post("/v1/posts", json={"text": "probe"}, headers=h).json().get("post_id")
            on.put(f"/v1/users/{probe}/following/{peer}", headers=h)
            on.put(f"/v1/posts/{pid}/like", headers=h)
            time.sleep(3)
        lat = measure(on, off, on_s, args.iterations)
    satisfied = int(lat.pop("satisfied")[0])
    figures = {k: latency_ms(v) for k, v in lat.items()}
    ratios = {f"{a}/{b}": {q: figures[a][q] / figures[b][q] for q in ("p50", "p99")}
              for a, b in (("write_on", "write_off"), ("profile_token", "profile_off"), ("feed_token", "feed_off"))}
    report = {"scenario": "consistency", "started_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
              "config": {"iterations": args.iterations}, "machine": machine_info(),
              "latency_ms": figures, "ratios": ratios, "write_then_read_satisfied": satisfied,
              "load_average_at_end": os.getloadavg()}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "consistency.json").write_text(json.dumps(report, indent=1))
    print(f"{'figure':<16} {'p50 ms':>8} {'p99 ms':>8}")
    for k, v in figures.items():
        print(f"{k:<16} {v['p50']:>8.2f} {v['p99']:>8.2f}")
    for k, v in ratios.items():
        print(f"{k:<28} p50 x{v['p50']:.2f}  p99 x{v['p99']:.2f}")
    print(f"write then own read: {satisfied} of {args.iterations} satisfied and fresh; "
          f"load average at end {os.getloadavg()[0]:.1f} (shared machine: re-measure on a quiet one)")
    return report


if __name__ == "__main__":
    main()
