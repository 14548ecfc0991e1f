"""Fan-out benchmark: deliveries/s vs pipelined ZADD ceiling, write-to-visible latency, rebuild cost.

``python -m bench.fanout [--users N] [--posts M] [--batch B] [--rate R[,R2..]] [--seconds S]`` on the
stack configured by ``FEEDSTREAM_*`` (its own keyspace ``fs_bench_fanout`` and Redis db 8). Saves
JSON under ``.feedstream/bench/fanout.json``.

Deliveries/s is measured twice on the same posts: one post per call (a worker with no backlog) and
``--batch`` posts per call (what the worker's ``take_events`` batches amount to under load).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

from bench import ceilings
from bench.fanout_drain import drain, register
from core.events import post_created
from core.settings import Settings, get_settings, isolated, with_overrides
from ops.workers import workers
from stores import graph
from stores import redis as redis_store
from stores import timelines as tls
from streams.producer import EventProducer
from topologies.fanout.app import process_posts
from topologies.fanout.runtime import Stores
from topologies.faust_runtime import SourceRecord


def power_law_graph(n: int, mean: float, alpha: float, seed: int) -> dict[str, list[str]]:
    """followee -> followers with Pareto-distributed follower counts (capped at n-1)."""
    rng = random.Random(seed)
    users = [f"b{seed}-{i}" for i in range(n)]
    raw = [rng.paretovariate(alpha) for _ in users]
    scale = mean / statistics.fmean(raw)
    return {u: rng.sample(users, min(n - 1, max(1, int(x * scale)))) for u, x in zip(users, raw)}


def load_graph(r, g: dict[str, list[str]]) -> None:
    """Write the follower/following sets straight into Redis (the graph topology's layout)."""
    p = r.pipeline(transaction=False)
    for u, fs in g.items():
        p.set(graph.k_loaded(u), "1")  # loaded, as the graph topology leaves a warm Redis
        p.sadd(graph.k_followers(u), *fs)
        for f in fs:
            p.sadd(graph.k_following(f), u)
        if len(p) > 5000:
            p.execute()
    p.execute()


def zadd_ceiling(r, deliveries: list[tuple[str, int]]) -> float:
    """Deliveries/s of bare pipelined ZADDs (chunks of 2000) for the same (reader, post) pairs."""
    t0 = time.perf_counter()
    for i in range(0, len(deliveries), 2000):
        p = r.pipeline(transaction=False)
        for reader, pid in deliveries[i:i + 2000]:
            p.zadd(f"ceil:{reader}", {str(pid): pid})
        p.execute()
    return len(deliveries) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=5000)
    ap.add_argument("--mean-followers", type=float, default=50)
    ap.add_argument("--posts", type=int, default=400)
    ap.add_argument("--batch", type=int, default=100, help="posts per process_posts call")
    ap.add_argument("--rate", default="20,50", help="posts/s for the latency runs (comma-separated)")
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--drain", type=int, default=0,
                    help="only the drain run: N PostCreated pre-loaded on posts.v1, one real worker")
    ap.add_argument("--celebrity", type=int, default=1000, help="celebrity threshold of the drain run")
    ap.add_argument("--profile", type=Path, default=None, help="py-spy flame graph (SVG) of the drain worker")
    args = ap.parse_args()
    base = get_settings()
    s = isolated(base, "fs_bench_fanout", 8)
    if args.drain:
        return drain_main(base, s, args)
    knobs = with_overrides(s, celebrity_threshold=10**9, inactive_days=10**6)
    st = Stores(knobs)
    r = st.r
    r.flushdb()
    seed = random.randrange(10**6)
    g = power_law_graph(args.users, args.mean_followers, 1.5, seed)
    load_graph(r, g)
    sizes = [len(v) for v in g.values()]
    authors = list(g)
    rng = random.Random(seed)
    posts = [post_created(rng.choice(authors))[1] for _ in range(args.posts)]
    deliveries = [(f, p["post_id"]) for p in posts for f in g[p["author_id"]]]
    ceiling = zadd_ceiling(r, deliveries)
    _ = st.s  # connect and migrate before timing
    recs = [SourceRecord("posts.v1", 0, off, None, "PostCreated", p, 0) for off, p in enumerate(posts)]
    half = len(recs) // 2
    t0 = time.perf_counter()
    n_single = sum(len(process_posts(st, [rec])[0][1]) for rec in recs[:half])
    single = n_single / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    n_batch = 0
    for i in range(half, len(recs), args.batch):
        n_batch += sum(len(w) for _, w in process_posts(st, recs[i:i + args.batch]))
    batched = n_batch / (time.perf_counter() - t0)

    # durable-copy choice: per-delivery Cassandra timeline rows vs rebuild from the author index
    sess = st.s
    sess.execute("CREATE TABLE IF NOT EXISTS bench_timeline (reader text, post_id bigint, "
                 "PRIMARY KEY ((reader), post_id))")
    ins = sess.prepare("INSERT INTO bench_timeline (reader, post_id) VALUES (?, ?)")
    sample = deliveries[:5000]
    t0 = time.perf_counter()
    futs = [sess.execute_async(ins, d) for d in sample]
    for f in futs:
        f.result()
    cass_rows_per_s = len(sample) / (time.perf_counter() - t0)
    heavy_reader = max(g, key=lambda u: graph.following_count(r, u))
    follows = graph.following_count(r, heavy_reader)
    t0 = time.perf_counter()
    rebuilt = tls._compute_timeline(r, sess, heavy_reader, knobs)
    rebuild_ms = (time.perf_counter() - t0) * 1000

    lat = [latency_run(base, s, knobs, float(rate), args.seconds) for rate in args.rate.split(",")]
    result = {
        "graph": {"users": args.users, "edges": sum(sizes), "mean_fanout": statistics.fmean(sizes),
                  "max_fanout": max(sizes), "alpha": 1.5, "seed": seed},
        "posts": args.posts, "deliveries": len(deliveries),
        "zadd_ceiling_per_s": ceiling,
        "fanout_deliveries_per_s_single": single, "ratio_single": single / ceiling,
        "fanout_deliveries_per_s_batched": batched, "ratio_batched": batched / ceiling,
        "batch_posts": args.batch,
        "cassandra_timeline_rows_per_s": cass_rows_per_s,
        "rebuild_from_author_index_ms": rebuild_ms, "rebuild_follows": follows, "rebuild_ids": len(rebuilt),
        "latency": lat,
    }
    out = base.state_dir / "bench" / "fanout.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


def drain_main(base: Settings, s: Settings, args: argparse.Namespace) -> None:
    """``--drain N``: one fan-out worker draining N pre-loaded PostCreated; ratios to same-run ceilings."""
    out = drain_report(base, s, posts=args.drain, users=args.users, mean_followers=args.mean_followers,
                       celebrity=args.celebrity, profile=args.profile)
    path = base.state_dir / "bench" / "fanout_drain.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


def drain_report(base: Settings, s: Settings, *, posts: int, users: int = 5000, mean_followers: float = 50,
                 celebrity: int = 1000, profile: Path | None = None) -> dict:
    """The fan-out drain on a fresh power-law graph (Redis db of ``s``) with its same-run ceilings:
    pipelined ZADD (before and after the drain, the higher kept), raw consume, raw Cassandra insert."""
    knobs = {"celebrity_threshold": celebrity, "inactive_days": 10**6, "log_batches": True}
    st = Stores(with_overrides(s, **knobs))
    r = st.r
    r.flushdb()
    seed = random.randrange(10**6)
    g = power_law_graph(users, mean_followers, 1.5, seed)
    load_graph(r, g)
    _ = st.s  # keyspace migrated before the worker starts
    rng = random.Random(seed)
    backlog = [post_created(rng.choice(list(g)))[1] for _ in range(posts)]
    fan = {a: 1 + (len(set(f) - {a}) if len(set(f) - {a}) <= celebrity else 0) for a, f in g.items()}
    per_post = {p["post_id"]: fan[p["author_id"]] for p in backlog}
    pairs = [(f, p["post_id"]) for p in backlog for f in g[p["author_id"]][:per_post[p["post_id"]]]]
    ceiling = zadd_ceiling(r, pairs)
    res = drain(base, s, r, backlog, per_post, knobs=knobs, profile=profile)
    ceiling_after = zadd_ceiling(r, pairs)
    cass = ceilings.cassandra_insert(s, ceilings.new_run_id(), duration_s=2.0)["value"]
    sizes = [len(v) for v in g.values()]
    zadd = max(ceiling, ceiling_after)
    return {"graph": {"users": users, "edges": sum(sizes), "mean_fanout": statistics.fmean(sizes),
                      "max_fanout": max(sizes), "celebrities": sum(x > celebrity for x in sizes),
                      "alpha": 1.5, "seed": seed},
            "mean_deliveries_per_post": statistics.fmean(per_post.values()),
            "zadd_ceiling_per_s": zadd, "drain": res,
            "ratio_to_zadd": res.get("deliveries_per_s", 0) / zadd,
            "cassandra_insert_per_s": cass,  # fan-out writes 2 rows per post (post, author index)
            "ratio_posts_rows_to_cassandra": 2 * res.get("posts_per_s", 0) / cass,
            "load_average": os.getloadavg(),
            "scale_model_10k_posts_s": scale_model(res, statistics.fmean(per_post.values()), zadd)}


def scale_model(res: dict, deliveries_per_post: float, zadd_per_s: float) -> dict:
    """Fan-out cores and Redis nodes for 10K posts/s at the measured mean deliveries per post."""
    need = 10_000 * deliveries_per_post
    per_cpu = res.get("deliveries_per_cpu_s") or 0
    return {"deliveries_per_s": need, "fanout_cores": need / per_cpu if per_cpu else None,
            "redis_nodes_cluster": need / (zadd_per_s / 3),
            "note": "cores = need / deliveries per worker CPU-s; nodes = need / (same-run ZADD ceiling / 3 "
                    "commands per delivery: ZADD, trim, HSET; publishes batched)"}


def latency_run(base, s, knobs: Settings, rate: float, seconds: float) -> dict:
    """Produce posts at ``rate`` through Kafka to a fan-out worker; time PostCreated -> feed:{r} push."""
    r = redis_store.client(s)
    tag = uuid.uuid4().hex[:8]
    authors = [f"lat{tag}-a{i}" for i in range(20)]
    register(r, authors)  # fan-out dead-letters posts by authors who never registered
    p = r.pipeline(transaction=False)
    for i, a in enumerate(authors):
        for j in range(20):
            f = f"lat{tag}-f{i}-{j}"
            p.sadd(graph.k_followers(a), f)
            p.sadd(graph.k_following(f), a)
    p.execute()
    sent: dict[int, float] = {}
    lat: list[float] = []
    sub = r.pubsub()
    sub.psubscribe(tls.channel(f"lat{tag}-f*-0"))
    stop = threading.Event()

    def listen() -> None:
        while not stop.is_set():
            m = sub.get_message(timeout=0.2)
            if m and m["type"] == "pmessage":
                pid = json.loads(m["data"])["post_id"]
                if pid in sent:
                    lat.append((time.time() - sent.pop(pid)) * 1000)

    log_dir = Path(tempfile.mkdtemp(prefix="bench-fanout-"))
    with EventProducer(base) as prod, workers(s, ("fanout",), log_dir=log_dir, topology_offset_reset="latest",
                                               topology_group_suffix=f"-bench-{tag}",
                                               celebrity_threshold=knobs.celebrity_threshold,
                                               inactive_days=knobs.inactive_days, log_batches=True):
        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        warm = post_created(authors[0])  # wait for the worker to join
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            prod.send(*warm)
            time.sleep(2)
            if r.zscore(tls.k_timeline(f"lat{tag}-f0-0"), str(warm[1]["post_id"])) is not None:
                break
        n = int(rate * seconds)
        t_start = time.monotonic()
        for i in range(n):
            ev = post_created(authors[i % len(authors)])
            sent[ev[1]["post_id"]] = time.time()
            prod.submit(*ev)
            time.sleep(max(0.0, t_start + (i + 1) / rate - time.monotonic()))
        time.sleep(5)
        stop.set()
        listener.join()
    lat.sort()
    q = lambda x: lat[min(len(lat) - 1, int(x * len(lat)))] if lat else None
    return {"post_rate_per_s": rate, "posts": n, "followers_per_post": 20, "observed": len(lat),
            "p50_ms": q(0.5), "p99_ms": q(0.99), "max_ms": lat[-1] if lat else None,
            "path": "EventProducer -> posts.v1 -> fanout worker (Faust) -> Redis ZADD + PUBLISH",
            "worker_log": str(log_dir / "fanout.log")}


if __name__ == "__main__":
    main()
