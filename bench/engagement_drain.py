"""Engagement drain: one real engagement worker draining a pre-loaded backlog, against same-run ceilings.

``python -m bench.engagement_drain [--events N] [--posts P] [--profile out.svg]`` on the stack in
``FEEDSTREAM_*`` (its own keyspace ``fs_bench_eng`` and Redis db 9). The backlog is N engagements
on P posts (known to the worker: rows in ``posts``) with power-law popularity (Zipf α 1.1) by
20,000 users: 80 % Liked, 10 % Unliked, 10 % ReactionAdded, plus 5 % redeliveries (exact repeats
of an earlier event). It is produced before the worker starts (consumer group committed at the
topic's end first, :func:`bench.fanout_drain.drain_topology`), and the drain is timed from the
first applied batch to the end (progress marks), with the worker's CPU from ``/proc/<pid>/stat``.

Same-run ceilings: raw confluent-kafka consume of the same backlog, the raw producer, pipelined
Redis ops (HSET, as the hot counters are written), confluent-kafka consume + Avro decode
(:func:`consume_decode`) and Faust's own per-message cost: the worker's pipelined agent with a
no-op handler (:mod:`bench.faust_consume`). After the drain the Cassandra totals of every
post are compared with :func:`topologies.engagement.logic.recount` of the backlog
(``recount_mismatches`` must be 0). Writes ``engagement_drain.json`` to the results directory.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import redis as _redis

from bench import ceilings
from bench.fanout_drain import drain_topology
from core.events import new_event
from core.ids import new_id
from core.settings import Settings, get_settings, isolated
from stores import cassandra
from stores import redis as redis_store
from stores.counters import CounterStore
from streams.catalog import ENGAGEMENTS
from topologies.engagement.logic import recount

REACTIONS = ("LIKE", "LOVE", "HAHA", "WOW", "SAD", "ANGRY")


def backlog(posts: list[tuple[int, str]], n: int, seed: int, users: int = 20_000
            ) -> list[tuple[str, dict[str, Any]]]:
    """``n`` engagements on ``posts`` (Zipf-like popularity), 5 % of them redeliveries."""
    rng = random.Random(seed)
    weights = [1 / (i + 1) ** 1.1 for i in range(len(posts))]
    out: list[tuple[str, dict[str, Any]]] = []
    base = int(time.time() * 1000) - 3_600_000
    while len(out) < n:
        if out and rng.random() < 0.05:
            out.append(rng.choice(out))  # a redelivery: the very same event again
            continue
        pid, author = rng.choices(posts, weights)[0]
        user = f"u{rng.randrange(users)}"
        ts = base + len(out)  # ms
        roll = rng.random()
        common = {"post_id": pid, "post_author_id": author, "user_id": user}
        if roll < 0.8:
            name, extra = "Liked", {}
        elif roll < 0.9:
            name, extra = "Unliked", {}
        else:
            name, extra = "ReactionAdded", {"kind": rng.choice(REACTIONS)}
        ev = new_event(user, **common, **extra)
        ev["occurred_at"] = ts
        out.append((name, ev))
    return out


def redis_hset(s: Settings, run_id: str, duration_s: float = 2.0, depth: int = 1000,
               keys: int = 1000) -> float:
    """Pipelined HSET (one field) ops/s over ``keys`` hashes, one connection."""
    r = _redis.Redis.from_url(s.redis_url)
    prefix = f"bench:{run_id}:hset:"
    n, t0 = 0, time.perf_counter()
    try:
        while time.perf_counter() - t0 < duration_s:
            p = r.pipeline(transaction=False)
            for _ in range(depth):
                n += 1
                p.hset(f"{prefix}{n % keys}", "likes", n)
            p.execute()
        return n / (time.perf_counter() - t0)
    finally:
        r.delete(*[f"{prefix}{i}" for i in range(keys)])
        r.close()


def consume_decode(s: Settings, topic: str, n: int = 0, *, start: dict[int, int] | None = None,
                   end: dict[int, int] | None = None) -> dict[str, float]:
    """confluent-kafka ``consume(1000)`` + Avro decode of ``topic``'s records: ``n`` from the earliest
    offset, or with ``end`` those from ``start`` (default 0) to ``end`` per partition. Process CPU
    per record: the ceiling without Faust."""
    from confluent_kafka import Consumer, TopicPartition

    from topologies.faust_runtime import make_serde

    serde = make_serde(s)
    c = Consumer({"bootstrap.servers": s.kafka_bootstrap, "group.id": f"ceiling-decode-{new_id()}",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    if end is None:
        c.subscribe([topic])
        want, stop = n, None
    else:
        first = start or {}
        c.assign([TopicPartition(topic, p, first.get(p, 0)) for p, o in end.items() if o > first.get(p, 0)])
        want, stop = sum(o - first.get(p, 0) for p, o in end.items()), end
    got, t0, c0 = 0, time.perf_counter(), time.process_time()
    try:
        while got < want and time.perf_counter() - t0 < 120:
            for m in c.consume(1000, timeout=0.5):
                if m.error() is None and (stop is None or (m.offset() or 0) < stop[m.partition() or 0]):
                    serde.decode(m.value())
                    got += 1
    finally:
        c.close()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"events": got, "events_per_s": got / wall, "events_per_cpu_s": got / cpu if cpu else 0.0}


def faust_consume(base: Settings, n: int, pause_s: float = 0.05) -> dict[str, Any]:
    """:mod:`bench.faust_consume` in a child process on the same stack (Faust's per-message cost)."""
    env = {**os.environ, "FEEDSTREAM_KEYSPACE": "fs_bench_eng"}
    out = subprocess.run([sys.executable, "-m", "bench.faust_consume", str(n), str(pause_s)], check=False, env=env,
                         capture_output=True, text=True, timeout=300)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    return json.loads(lines[-1]) if lines else {"error": out.stderr[-2000:]}


def run(base: Settings, events: int, n_posts: int = 500, profile: Path | None = None,
        seed: int | None = None) -> dict[str, Any]:
    """Pre-load, drain with one worker, check against the recount; returns the report."""
    s = isolated(base, "fs_bench_eng", 9)
    load = [os.getloadavg()]
    sess = cassandra.session(s)
    ins = sess.prepare("INSERT INTO posts (post_id, author_id, text, deleted) VALUES (?, ?, 'b', false)")
    posts = [(new_id(), f"a{i % 200}") for i in range(n_posts)]
    for pid, author in posts:
        sess.execute(ins, (pid, author))
    seed = random.randrange(10**6) if seed is None else seed
    log = backlog(posts, events, seed)
    r = redis_store.client(s)
    run_id = ceilings.new_run_id()
    producer = ceilings.kafka_producer(s, run_id)["value"]
    hset = redis_hset(s, run_id)
    res = drain_topology(base, s, r, "engagement", ENGAGEMENTS.resolved(s).name, log, [1] * len(log),
                         knobs={"engagement_user_check": False, "log_batches": True}, profile=profile)
    faust = faust_consume(base, len(log))
    decode = consume_decode(s, ENGAGEMENTS.resolved(s).name, len(log))
    load.append(os.getloadavg())
    store = CounterStore(sess)
    by_post: dict[int, list[tuple[str, dict[str, Any]]]] = {}
    for name, ev in log:
        by_post.setdefault(int(ev["post_id"]), []).append((name, ev))
    bad = [pid for pid, evs in by_post.items() if store.totals(pid) != recount(evs)]
    eps, per_cpu = res.get("events_per_s") or 0, res.get("events_per_cpu_s") or 0
    return {"events": len(log), "posts": n_posts, "seed": seed, "load_average": load,
            "raw_producer_msgs_per_s": producer, "redis_hset_pipelined_per_s": hset, **res,
            "ratio_to_raw_consume": res.get("consume_ratio"),
            "ratio_to_raw_producer": eps / producer if producer else None,
            "ratio_per_cpu_s_to_raw_consume": per_cpu / res["raw_consume_per_s"] if res.get("raw_consume_per_s") else None,
            "faust_noop_consume": faust, "raw_consume_decode": decode,
            "ratio_per_cpu_s_to_faust_noop": per_cpu / faust["events_per_cpu_s"] if faust.get("events_per_cpu_s") else None,
            "recount_posts": len(by_post), "recount_mismatches": len(bad)}


def main() -> None:
    """CLI entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--posts", type=int, default=500)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--profile", type=Path, default=None, help="py-spy flame graph (SVG) of the worker")
    args = ap.parse_args()
    res = run(get_settings(), args.events, args.posts, args.profile, args.seed)
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / "engagement_drain.json").write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
