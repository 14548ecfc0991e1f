"""Capacity: each hot endpoint closed-loop with rising concurrency until throughput stops rising.

Seeds its own keyspace and Redis database like :mod:`bench.read_api` (profiles, posts, timelines,
celebrities merged at read, counters), starts its own API process (:func:`bench.write_api.start_server`,
limits sized out of the way) and drives, through wrk (:mod:`bench.http_load`), one endpoint at a
time: ``/v1/_bench/noop`` (the ceiling), the chronological first page, the ranked page, the second
page by cursor, ``POST /v1/posts`` with a fresh Idempotency-Key, a like and a follow (202 after
Kafka's acknowledgement). Per endpoint it reports:

- max throughput (2xx/s) over rising wrk connection counts, stopping once a level gains < ``gain``;
- p50/p99 at 80 % of that rate (the same connections, each paced so the offered rate is 80 %);
- API CPU per request: utime+stime of the API pid from ``/proc/<pid>/stat`` ÷ requests, at max;
- the ratio to the noop ceiling of the same process in the same run.

With ``--profile``, py-spy records the API process while wrk drives the named endpoints at their
best concurrency, and writes one flame graph SVG per endpoint.

    python -m bench.capacity --step 3 --profile feed,post_create --profile-dir docs/profiles
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench import http_load as hl
from bench.report import RESULTS_DIR, machine_info

LEVELS = (1, 2, 4, 8, 16, 32, 64)
READ_TARGET_PER_S, WRITE_TARGET_PER_S = 500_000, 50_000
GOALS = {"feed": 0.5, "feed_ranked": 0.3, "feed_page2": 0.5, "post_create": 0.35, "like": 0.35, "follow": 0.35}
WRITES = ("post_create", "like", "follow")
LIMITS_ENV = {"FEEDSTREAM_API_READ_RATE_USER_PER_S": "1000000", "FEEDSTREAM_API_READ_RATE_USER_BURST": "1000000",
              "FEEDSTREAM_API_READ_RATE_IP_PER_S": "10000000", "FEEDSTREAM_API_READ_RATE_IP_BURST": "10000000",
              "FEEDSTREAM_API_RATE_USER_PER_S": "1000000", "FEEDSTREAM_API_RATE_USER_BURST": "1000000",
              "FEEDSTREAM_API_RATE_IP_PER_S": "10000000", "FEEDSTREAM_API_RATE_IP_BURST": "10000000"}


def proc_cpu_seconds(stat: str, ticks_per_s: int) -> float:
    """utime + stime (seconds) from the text of ``/proc/<pid>/stat``.

    The command name (field 2) is in parentheses and may hold spaces, so fields are counted after
    the last ``)``: utime and stime are fields 14 and 15 of the line.
    """
    rest = stat[stat.rindex(")") + 2:].split()
    return (int(rest[11]) + int(rest[12])) / ticks_per_s


def descendants(pid: int) -> list[int]:
    """``pid`` and every live process below it (``/proc/<pid>/task/<tid>/children``)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*/children"):
            try:
                todo += [int(c) for c in task.read_text().split()]
            except OSError:
                continue
    return out


def api_cpu_seconds(pid: int) -> float:
    """CPU seconds the API process ``pid`` and its live children have used (uvicorn serves in ``pid``
    itself; granian in a worker child under a supervising parent)."""
    total = 0.0
    for p in descendants(pid):
        try:
            total += proc_cpu_seconds(Path(f"/proc/{p}/stat").read_text(), os.sysconf("SC_CLK_TCK"))
        except OSError:
            continue
    return total


@dataclass(frozen=True)
class Step:
    """One closed-loop level: connections, 2xx/s, API CPU s per request, the wrk stats."""

    connections: int
    rate_per_s: float
    cpu_per_req_s: float | None
    stats: dict[str, Any]


def saturate(measure: Callable[[int], Step], levels: Sequence[int], gain: float = 0.05) -> list[Step]:
    """Measure rising ``levels`` until one gains less than ``gain`` over the best so far (or errors)."""
    steps: list[Step] = []
    best = 0.0
    for c in levels:
        st = measure(c)
        steps.append(st)
        if st.stats.get("error_rate", 0.0) > 0.01:
            break
        if len(steps) > 1 and st.rate_per_s < best * (1 + gain):
            break
        best = max(best, st.rate_per_s)
    return steps


def best_step(steps: Sequence[Step]) -> Step:
    """The level with the highest throughput (error-free levels first)."""
    clean = [s for s in steps if s.stats.get("error_rate", 0.0) <= 0.01] or list(steps)
    return max(clean, key=lambda s: s.rate_per_s)


@dataclass(frozen=True)
class Endpoint:
    """A hot endpoint: wrk request templates (rotated) and whether each request gets a unique key."""

    name: str
    reqs: list[hl.HttpReq]
    unique: bool = False


class Driver:
    """wrk against one API process, with that process's CPU read around every run."""

    def __init__(self, base_url: str, pid: int, step_s: float, at80_s: float, key_prefix: str) -> None:
        self.base_url, self.pid, self.step_s, self.at80_s, self.key_prefix = base_url, pid, step_s, at80_s, key_prefix
        self.runs = 0

    def wrk(self, ep: Endpoint, connections: int, duration_s: float, delay_ms: float = 0.0) -> tuple[dict, float]:
        self.runs += 1
        cpu0 = api_cpu_seconds(self.pid)
        stats = hl.run_wrk(self.base_url, ep.reqs, duration_s=duration_s, connections=connections,
                           unique=ep.unique, key_prefix=f"{self.key_prefix}-{self.runs}", delay_ms=delay_ms)
        return stats, api_cpu_seconds(self.pid) - cpu0

    def step(self, ep: Endpoint, connections: int) -> Step:
        stats, cpu = self.wrk(ep, connections, self.step_s)
        return Step(connections, stats["rate_per_s"], cpu / stats["count"] if stats["count"] else None, stats)

    def endpoint(self, ep: Endpoint, levels: Sequence[int], gain: float) -> dict[str, Any]:
        """Saturate, then run at 80 % of the max with the best level's connections."""
        steps = saturate(lambda c: self.step(ep, c), levels, gain)
        top = best_step(steps)
        rate80 = 0.8 * top.rate_per_s
        at80, _ = self.wrk(ep, top.connections, self.at80_s, hl.bounded_delay_ms(top.connections, rate80))
        return {"max_rate_per_s": round(top.rate_per_s, 1), "best_connections": top.connections,
                "cpu_ms_per_req": round(1000 * top.cpu_per_req_s, 3) if top.cpu_per_req_s else None,
                "per_core_second": round(1 / top.cpu_per_req_s, 1) if top.cpu_per_req_s else None,
                "error_rate_at_max": round(top.stats["error_rate"], 5), "statuses_at_max": top.stats["statuses"],
                "at_80pct": {"offered_per_s": round(rate80, 1), "rate_per_s": round(at80["rate_per_s"], 1),
                             "p50_ms": at80["latency_ms"]["p50"] if at80["latency_ms"] else None,
                             "p99_ms": at80["latency_ms"]["p99"] if at80["latency_ms"] else None,
                             "error_rate": round(at80["error_rate"], 5), "how": at80["how"]},
                "levels": [{"connections": s.connections, "rate_per_s": round(s.rate_per_s, 1),
                            "cpu_ms_per_req": round(1000 * s.cpu_per_req_s, 3) if s.cpu_per_req_s else None,
                            "p99_ms": (s.stats["latency_ms"] or {}).get("p99"),
                            "error_rate": round(s.stats["error_rate"], 5)} for s in steps]}

    def profile(self, ep: Endpoint, connections: int, duration_s: float, out: Path) -> str | None:
        """py-spy flame graph of the API process while wrk drives ``ep``; None if py-spy is missing."""
        spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
        if spy is None:
            return None
        out.parent.mkdir(parents=True, exist_ok=True)
        rec = subprocess.Popen([spy, "record", "-p", str(self.pid), "-d", str(int(duration_s) + 1), "-r", "200",
                                "-f", "flamegraph", "-o", str(out), "--nonblocking", "--subprocesses"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.wrk(ep, connections, duration_s)
        _, err = rec.communicate(timeout=duration_s + 60)
        return str(out) if rec.returncode == 0 else f"py-spy failed: {err.strip()[-300:]}"


def endpoints(tokens: dict[str, str], readers: list[str], authors: list[str], post_ids: list[int],
              cursors: dict[str, str], limit: int, rng: random.Random) -> list[Endpoint]:
    """The hot endpoints as wrk templates (readers rotated; writes by seeded users)."""
    def h(user: str, body: bool = False) -> dict[str, str]:
        out = {"Authorization": f"Bearer {tokens[user]}"}
        return out | ({"Content-Type": "application/json"} if body else {})

    feed = [hl.HttpReq("GET", f"/v1/users/{rd}/feed?limit={limit}", h(rd)) for rd in readers]
    return [
        Endpoint("noop", [hl.HttpReq("GET", "/v1/_bench/noop")]),
        Endpoint("feed", feed),
        Endpoint("feed_ranked", [hl.HttpReq("GET", f"{r.path}&algorithm=ranked", r.headers) for r in feed]),
        Endpoint("feed_page2", [hl.HttpReq("GET", f"/v1/users/{rd}/feed?limit={limit}&cursor={cursors[rd]}", h(rd))
                                for rd in readers]),
        Endpoint("post_create", [hl.HttpReq("POST", "/v1/posts", h(rd, True),
                                            json.dumps({"text": f"capacity {hl.UNIQUE} #bench"}))
                                 for rd in readers], unique=True),
        Endpoint("like", [hl.HttpReq("PUT", f"/v1/posts/{rng.choice(post_ids)}/like", h(rd))
                          for rd in readers for _ in range(4)]),
        Endpoint("follow", [hl.HttpReq("PUT", f"/v1/users/{rd}/following/{rng.choice(authors)}", h(rd))
                            for rd in readers for _ in range(4)]),
    ]


def scale_model(figs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """API cores for the design's 500K feed reads/s and 50K writes/s from CPU per request."""
    def cores(name: str, rate: int) -> float | None:
        ms = figs.get(name, {}).get("cpu_ms_per_req")
        return round(rate * ms / 1000, 1) if ms else None

    writes = [cores(w, WRITE_TARGET_PER_S) for w in WRITES if cores(w, WRITE_TARGET_PER_S)]
    return {"api_cores_500k_feed_reads": cores("feed", READ_TARGET_PER_S),
            "api_cores_500k_ranked_reads": cores("feed_ranked", READ_TARGET_PER_S),
            "api_cores_50k_writes_worst": max(writes) if writes else None,
            "how": "cores = target rate x API CPU s per request at max throughput (one process, /proc)"}


def prepare(s: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Seed the stores as the topologies would (see :func:`bench.read_api.seed`)."""
    from bench.read_api import seed

    return seed(s, args.readers, args.authors, args.posts_per_author, args.follows, args.celebrities,
                random.Random(7))


def run(args: argparse.Namespace, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Seed, serve, saturate every endpoint, profile if asked; the report (also saved as JSON)."""
    from bench.read_api import KEYSPACE, bench_settings
    from bench.write_api import _free_port, start_server
    from serving.auth import mint_token
    from stores import posts as post_store
    from stores import redis as redis_store

    s = bench_settings()
    t0 = time.monotonic()
    shape = prepare(s, args)
    readers = shape.pop("readers")
    echo(f"seeded {len(readers)} readers, {shape['posts']} posts in {time.monotonic() - t0:.0f}s")
    r = redis_store.client(s)
    authors = [f"ba{i}" for i in range(args.authors)]
    post_ids = sorted({int(p) for a in authors[:10] for p in r.zrevrange(post_store.k_author(a), 0, 9)})
    r.close()
    env = LIMITS_ENV | {"FEEDSTREAM_KEYSPACE": KEYSPACE, "FEEDSTREAM_REDIS_URL": s.redis_url,
                        "FEEDSTREAM_CELEBRITY_THRESHOLD": str(len(readers) - 1)} | dict(args.env)
    port = _free_port()
    server = start_server(port, env, server=args.server)
    base = f"http://127.0.0.1:{port}"
    tokens = {u: mint_token(u, s, 3600) for u in readers}
    try:
        cursors = {}
        with httpx.Client(base_url=base, timeout=30) as c:
            for rd in readers:
                res = c.get(f"/v1/users/{rd}/feed", params={"limit": args.limit},
                            headers={"Authorization": f"Bearer {tokens[rd]}"})
                res.raise_for_status()
                cursors[rd] = res.json()["next_cursor"]
        eps = {e.name: e for e in endpoints(tokens, readers, authors, post_ids, cursors, args.limit,
                                            random.Random(11))}
        drv = Driver(base, server.pid, args.step, args.at80, f"cap-{int(time.time())}")
        figs: dict[str, dict[str, Any]] = {}
        for name in ["noop", *[n for n in args.endpoints if n != "noop"]]:
            figs[name] = drv.endpoint(eps[name], args.levels, args.gain)
            echo(f"  {name}: {figs[name]['max_rate_per_s']:.0f}/s at {figs[name]['best_connections']} conns, "
                 f"{figs[name]['cpu_ms_per_req']} ms CPU/req, p99@80% {figs[name]['at_80pct']['p99_ms']} ms")
        profiles = {}
        for name in args.profile:
            out = args.profile_dir / f"{name}-{args.tag}.svg"
            profiles[name] = drv.profile(eps[name], figs[name]["best_connections"], args.profile_s, out)
    finally:
        server.terminate()
        server.wait(30)
    noop = figs["noop"]["max_rate_per_s"]
    for name, f in figs.items():
        f["ratio_to_noop"] = round(f["max_rate_per_s"] / noop, 3) if noop else None
        f["goal_ratio"] = GOALS.get(name)
    report = {"scenario": "capacity", "tag": args.tag, "started_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
              "machine": machine_info(), "dataset": shape, "server": f"{args.server}, {args.server_note}",
              "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "env"},
              "endpoints": figs, "scale": scale_model(figs), "profiles": profiles,
              "how": "wrk -t1 closed loop (bench/http_load.py) over rising connections; CPU from /proc/<api pid>/stat"}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"capacity-{args.tag}.json"
    path.write_text(json.dumps(report, indent=1))
    echo(summary(report))
    echo(f"saved {path}")
    return report


def summary(report: dict[str, Any]) -> str:
    """The capacity table as text."""
    head = (f"{'endpoint':<12} {'max/s':>8} {'x noop':>7} {'goal':>5} {'CPU ms':>7} {'/core-s':>8} "
            f"{'p50@80%':>8} {'p99@80%':>8} {'conns':>5}")
    lines = [head]
    for name, f in report["endpoints"].items():
        a = f["at_80pct"]
        lines.append(f"{name:<12} {f['max_rate_per_s']:>8.0f} {f['ratio_to_noop'] or 0:>7.3f} "
                     f"{f['goal_ratio'] or '':>5} {f['cpu_ms_per_req'] or 0:>7.3f} {f['per_core_second'] or 0:>8.0f} "
                     f"{a['p50_ms'] or 0:>8.2f} {a['p99_ms'] or 0:>8.2f} {f['best_connections']:>5}")
    sc = report["scale"]
    lines.append(f"scale: {sc['api_cores_500k_feed_reads']} API cores for 500K feed reads/s, "
                 f"{sc['api_cores_50k_writes_worst']} for 50K writes/s (worst write endpoint)")
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.capacity", description=__doc__.split("\n\n")[0])
    p.add_argument("--step", type=float, default=3.0, help="seconds per concurrency level")
    p.add_argument("--at80", type=float, default=5.0, help="seconds of the 80 %% run")
    p.add_argument("--levels", type=lambda v: [int(x) for x in v.split(",")], default=list(LEVELS))
    p.add_argument("--gain", type=float, default=0.05, help="stop when a level gains less than this")
    p.add_argument("--endpoints", type=lambda v: v.split(","), default=[*GOALS])
    p.add_argument("--limit", type=int, default=20, help="feed page size")
    p.add_argument("--readers", type=int, default=200)
    p.add_argument("--authors", type=int, default=100)
    p.add_argument("--posts-per-author", type=int, default=20)
    p.add_argument("--follows", type=int, default=30)
    p.add_argument("--celebrities", type=int, default=2)
    p.add_argument("--profile", type=lambda v: [x for x in v.split(",") if x], default=[],
                   help="endpoints to record with py-spy (e.g. feed,post_create)")
    p.add_argument("--profile-s", type=float, default=8.0)
    p.add_argument("--profile-dir", type=Path, default=RESULTS_DIR)
    p.add_argument("--tag", default="latest", help="names the JSON and profile files")
    p.add_argument("--server", choices=("uvicorn", "granian"), default="uvicorn",
                   help="ASGI server of the API process (python -m serving.main --server ...)")
    p.add_argument("--server-note", default="1 process (python -m serving.main)")
    p.add_argument("--env", type=lambda v: tuple(v.split("=", 1)), action="append", default=[],
                   help="KEY=VALUE for the API process (repeatable)")
    p.add_argument("--out", type=Path, default=RESULTS_DIR)
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Parse arguments and run."""
    return run(parser().parse_args(argv))


if __name__ == "__main__":
    main()
