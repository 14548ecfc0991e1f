"""Same-run A/B of two source trees' API processes: CPU per request of each, in interleaved blocks.

On a machine shared with other work, two capacity runs minutes apart differ by more than a change
does (noop alone moved 0.21 -> 0.32 ms CPU between runs). This serves the capacity bench's seeded
data (:func:`bench.capacity.prepare`) from two API processes at once, one per source tree (e.g. a
``git archive`` of the base commit, and this tree), and drives them in alternating short wrk blocks
(``--rounds`` x every endpoint x both trees, the order flipped every round), so load swings hit both.
Per tree and endpoint it reports the median API CPU per request over the rounds (``/proc``), that
figure as a multiple of the same tree's noop, and the B/A ratio (and the median of each block's
closed-loop p99, which on a shared machine is only a hint). ``post_create`` sends a fresh
Idempotency-Key per request, as :mod:`bench.capacity` does.

    git archive <base> | tar -x -C /tmp/base
    python -m bench.ab_api --a /tmp/base --b . --rounds 5 --connections 4
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time
from pathlib import Path
from typing import Any

import httpx

from bench import http_load as hl
from bench.capacity import LIMITS_ENV, api_cpu_seconds, endpoints, prepare
from bench.report import RESULTS_DIR
from bench.write_api import start_server


def write_targets(s: Any, n_authors: int, base: str) -> tuple[list[str], list[int]]:
    """The seeded authors, and the newest PUBLIC posts of the first ten (what likes target: a like of a
    FOLLOWERS post by a reader who does not follow its author is a 403, which this bench counts as an
    error). Visibility is read through the API (as each post's author): the seed does not cache bodies."""
    from serving.auth import mint_token
    from stores import posts as post_store
    from stores import redis as redis_store

    r = redis_store.client(s)
    try:
        authors = [f"ba{i}" for i in range(n_authors)]
        mine = {int(p): a for a in authors[:10] for p in r.zrevrange(post_store.k_author(a), 0, 9)}
        with httpx.Client(base_url=base, timeout=30) as c:
            for pid, a in sorted(mine.items()):  # a read caches the post's body in Redis
                c.get(f"/v1/posts/{pid}", headers={"Authorization": f"Bearer {mint_token(a, s, 3600)}"}
                      ).raise_for_status()
        bodies = r.mget([post_store.k_post(p) for p in sorted(mine)])
    finally:
        r.close()
    public = [p for p, raw in zip(sorted(mine), bodies) if raw and json.loads(raw)["visibility"] == "PUBLIC"]
    return authors, public


def run(args: argparse.Namespace) -> dict[str, Any]:
    from bench.read_api import KEYSPACE, bench_settings
    from bench.write_api import _free_port
    from serving.auth import mint_token

    s = bench_settings()
    shape = prepare(s, args)
    readers = shape.pop("readers")
    env = LIMITS_ENV | {"FEEDSTREAM_KEYSPACE": KEYSPACE, "FEEDSTREAM_REDIS_URL": s.redis_url,
                        "FEEDSTREAM_CELEBRITY_THRESHOLD": str(len(readers) - 1)}
    trees = {"a": args.a.resolve(), "b": args.b.resolve()}
    ports = {k: _free_port() for k in trees}
    extra = {"a": dict(args.env_a), "b": dict(args.env_b)}  # e.g. the same tree with another producer linger
    procs = {k: start_server(ports[k], env | extra[k], tree=t) for k, t in trees.items()}
    tokens = {u: mint_token(u, s, 3600) for u in readers}
    cpu: dict[str, dict[str, list[float]]] = {k: {e: [] for e in args.endpoints} for k in trees}
    p99: dict[str, dict[str, list[float]]] = {k: {e: [] for e in args.endpoints} for k in trees}  # closed loop
    run_id = int(time.time())
    try:
        cursors = {}
        with httpx.Client(base_url=f"http://127.0.0.1:{ports['b']}", timeout=30) as c:
            for rd in readers:  # a cursor decodes on both trees (same secret): walk one page on B
                res = c.get(f"/v1/users/{rd}/feed", params={"limit": args.limit},
                            headers={"Authorization": f"Bearer {tokens[rd]}"})
                res.raise_for_status()
                cursors[rd] = res.json()["next_cursor"]
        # the writes (post_create, like, follow) target the seeded authors and their posts, as bench.capacity's
        authors, post_ids = write_targets(s, args.authors, f"http://127.0.0.1:{ports['b']}")
        eps = {e.name: e for e in endpoints(tokens, readers, authors, post_ids, cursors, args.limit,
                                            random.Random(11))}
        order = list(trees)
        for rnd in range(args.rounds):
            for name in args.endpoints:
                for k in order:
                    cpu0 = api_cpu_seconds(procs[k].pid)
                    st = hl.run_wrk(f"http://127.0.0.1:{ports[k]}", eps[name].reqs, duration_s=args.block,
                                    connections=args.connections, unique=eps[name].unique,  # post_create: a
                                    key_prefix=f"ab-{run_id}-{k}-{rnd}")  # fresh Idempotency-Key per request
                    if st["error_rate"] > 0.01 or not st["count"]:
                        raise SystemExit(f"{k} {name}: errors {st['statuses']}")
                    cpu[k][name].append(1000 * (api_cpu_seconds(procs[k].pid) - cpu0) / st["count"])
                    p99[k][name].append(st["latency_ms"].get("p99", float("nan")))
            order.reverse()
            print(f"round {rnd}: " + ", ".join(f"{n} {cpu['a'][n][-1]:.3f}/{cpu['b'][n][-1]:.3f}"
                                                for n in args.endpoints) + " ms CPU/req (a/b)")
    finally:
        for p in procs.values():
            p.terminate()
        for p in procs.values():
            p.wait(30)
    med = {k: {n: statistics.median(v) for n, v in per.items()} for k, per in cpu.items()}
    out: dict[str, Any] = {"trees": {k: str(t) for k, t in trees.items()}, "env": extra, "config": {
        "rounds": args.rounds, "block_s": args.block, "connections": args.connections, "limit": args.limit},
        "load_average_end": os.getloadavg()[0], "cpu_ms_per_req": cpu, "median_cpu_ms_per_req": med,
        "p99_ms_closed_loop": p99,
        "median_p99_ms_closed_loop": {k: {n: statistics.median(v) for n, v in per.items()} for k, per in p99.items()},
        "x_noop_cpu": {k: {n: round(v / m["noop"], 3) for n, v in m.items()} for k, m in med.items()} if
        "noop" in args.endpoints else None,
        "b_to_a": {n: round(med["b"][n] / med["a"][n], 3) for n in args.endpoints}}
    lat = out["median_p99_ms_closed_loop"]
    print(f"{'endpoint':<12} {'a ms':>7} {'b ms':>7} {'b/a':>6} {'a x noop':>9} {'b x noop':>9} "
          f"{'a p99':>7} {'b p99':>7}")
    for n in args.endpoints:
        xa = out["x_noop_cpu"]["a"][n] if out["x_noop_cpu"] else float("nan")
        xb = out["x_noop_cpu"]["b"][n] if out["x_noop_cpu"] else float("nan")
        print(f"{n:<12} {med['a'][n]:>7.3f} {med['b'][n]:>7.3f} {out['b_to_a'][n]:>6.3f} {xa:>9.2f} {xb:>9.2f} "
              f"{lat['a'][n]:>7.1f} {lat['b'][n]:>7.1f}")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"ab_api-{args.tag}.json"
    path.write_text(json.dumps(out, indent=1))
    print(f"saved {path}")
    return out


def _env(text: str) -> list[tuple[str, str]]:
    return [tuple(kv.split("=", 1)) for kv in text.split(",") if kv]  # type: ignore[misc]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="python -m bench.ab_api", description=__doc__.split("\n\n")[0])
    p.add_argument("--a", type=Path, required=True, help="source tree of the base API (e.g. a git archive)")
    p.add_argument("--b", type=Path, default=Path("."), help="source tree of the changed API")
    p.add_argument("--endpoints", type=lambda v: v.split(","), default=["noop", "feed", "feed_page2", "feed_ranked"])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--block", type=float, default=3.0, help="seconds of wrk per tree, endpoint and round")
    p.add_argument("--connections", type=int, default=4)
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--readers", type=int, default=200)
    p.add_argument("--authors", type=int, default=100)
    p.add_argument("--posts-per-author", type=int, default=20)
    p.add_argument("--follows", type=int, default=30)
    p.add_argument("--celebrities", type=int, default=2)
    p.add_argument("--env-a", type=_env, default=[], help="KEY=VALUE,... for tree A's API only")
    p.add_argument("--env-b", type=_env, default=[], help="KEY=VALUE,... for tree B's API only")
    p.add_argument("--tag", default="latest")
    p.add_argument("--out", type=Path, default=RESULTS_DIR)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    main()
