"""Benchmark the engagement topology: events/s per core and p99 write-to-counter-visible.

``python -m bench.engagement [--events N] [--probes M]`` against the stack in ``FEEDSTREAM_*``
(e.g. the one ``make run`` started). It measures, in the same run:

- the ceiling: raw ``EventProducer`` messages/s producing the same Liked events;
- throughput: a real worker process (``topologies.engagement.app``) processing N engagements
  spread over ``--posts`` posts, as events/s wall-clock and per core (events / worker CPU-seconds).
  Its new consumer group starts at the end of the topics, so the history other runs left on a
  shared stack is not in the figures; ``--from-earliest`` drains that history first instead;
- latency: M single likes, each timed from ``send`` to its ``cnt:{post}`` hash showing it.

Prints ratios and writes ``bench/results/engagement.json`` (and a latency plot when matplotlib
is available).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import time
from pathlib import Path
from typing import Any

import psutil

from core.events import new_event
from core.ids import new_id
from core.settings import Settings, get_settings
from ops.workers import start_worker
from stores import cassandra
from stores import redis as redis_store
from stores.counters import CounterStore, counts_key
from streams.admin import apply_topics
from streams.producer import EventProducer


def _post(settings: Settings, author: str) -> int:
    pid = new_id()
    cassandra.session(settings).execute(
        "INSERT INTO posts (post_id, author_id, text, deleted) VALUES (%s, %s, 'b', false)", (pid, author))
    return pid


def _ready(settings: Settings, producer: EventProducer, timeout: float = 120) -> None:
    post, store = _post(settings, "bench-probe"), CounterStore(cassandra.session(settings))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        producer.send("Liked", new_event("p", post_id=post, post_author_id="bench-probe",
                                         user_id=f"p{new_id()}"))
        if store.totals(post).likes:
            return
        time.sleep(1)
    raise RuntimeError("engagement worker did not become ready")


def _drained(settings: Settings, group: str, timeout: float = 300) -> None:
    """Wait until ``group`` has committed up to the end of every topic the worker reads."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": group})
    topics = ("engagements.v1", "posts.v1", "graph.v1", "notifications.v1")
    tps = [TopicPartition(t, p) for t in topics for p in c.list_topics(t, timeout=10).topics[t].partitions]
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ends = [c.get_watermark_offsets(tp, timeout=10)[1] for tp in tps]
            done = [tp.offset for tp in c.committed(tps, timeout=10)]
            if all(d >= e or e == 0 for d, e in zip(done, ends)):
                return
            time.sleep(1)
    finally:
        c.close()
    raise RuntimeError(f"{group} did not drain the topics' history in {timeout}s")


def _likes(post: int, author: str, n: int) -> list[tuple[str, dict[str, Any]]]:
    return [("Liked", new_event(f"b{i}", post_id=post, post_author_id=author, user_id=f"b{i}"))
            for i in range(n)]


def measure(settings: Settings, events: int, probes: int, n_posts: int = 10,
            reset: str = "latest") -> dict[str, Any]:
    """Run the three measurements and return the figures."""
    apply_topics(settings)
    log_path = settings.state_dir / "logs" / "bench-engagement-worker.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with EventProducer(settings) as producer:
        ceiling_posts = [(_post(settings, "bench-c"), "bench-c") for _ in range(10)]
        batch = [e for p, a in ceiling_posts for e in _likes(p, a, events // 10)]
        t0 = time.perf_counter()
        producer.send_many(batch)
        raw_rate = len(batch) / (time.perf_counter() - t0)

        suffix = f"-bench-{new_id()}"
        group = f"feedstream-engagement{suffix}"
        worker = start_worker(settings, "engagement", log_path, new_session=True,
                              topology_group_suffix=suffix, topology_offset_reset=reset,
                              engagement_user_check=False)  # synthetic users, no users topology: the counter path
        try:
            _ready(settings, producer)
            if reset == "earliest":
                _drained(settings, group)
            proc = psutil.Process(worker.pid)
            posts = [(_post(settings, f"bench-a{i}"), f"bench-a{i}") for i in range(n_posts)]
            want = events // n_posts
            load = [e for p, a in posts for e in _likes(p, a, want)]
            random.Random(1).shuffle(load)
            r = redis_store.client(settings)
            cpu0 = sum(proc.cpu_times()[:2])
            t0 = time.perf_counter()
            producer.send_many(load)
            while any(int(r.hget(counts_key(p), "likes") or 0) < want for p, _ in posts):
                time.sleep(0.05)
            wall = time.perf_counter() - t0
            cpu = sum(proc.cpu_times()[:2]) - cpu0
            lat: list[float] = []
            for i in range(probes):
                post = _post(settings, "bench-l")
                start = time.perf_counter()
                producer.send("Liked", new_event("l", post_id=post, post_author_id="bench-l", user_id="l"))
                while not r.hget(counts_key(post), "likes"):
                    time.sleep(0.001)
                lat.append((time.perf_counter() - start) * 1000)
        finally:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(30)
    lat.sort()
    topo_rate = len(load) / wall
    return {
        "events": len(load), "posts": n_posts, "group_start": reset, "raw_producer_msgs_per_s": round(raw_rate, 1),
        "topology_events_per_s": round(topo_rate, 1),
        "topology_events_per_cpu_s": round(len(load) / cpu, 1) if cpu else None,
        "worker_cpu_s": round(cpu, 2), "ratio_topology_to_raw_producer": round(topo_rate / raw_rate, 4),
        "probes": len(lat), "p50_ms": round(lat[len(lat) // 2], 2),
        "p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))], 2), "max_ms": round(lat[-1], 2),
        "latencies_ms": [round(x, 2) for x in lat], "cores": psutil.cpu_count(),
    }


def main() -> None:
    """CLI entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=3000)
    ap.add_argument("--probes", type=int, default=200)
    ap.add_argument("--posts", type=int, default=10, help="posts the load is spread over")
    ap.add_argument("--from-earliest", action="store_true", help="drain the topics' history first")
    args = ap.parse_args()
    res = measure(get_settings(), args.events, args.probes, args.posts,
                  "earliest" if args.from_earliest else "latest")
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / "engagement.json").write_text(json.dumps(res, indent=2))
    print(json.dumps({k: v for k, v in res.items() if k != "latencies_ms"}, indent=2))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        plt.hist(res["latencies_ms"], bins=40)
        plt.xlabel("write -> counter visible (ms)")
        plt.title(f"engagement p99 {res['p99_ms']} ms; {res['topology_events_per_s']} ev/s")
        plt.savefig(out / "engagement.png")
    except ImportError:
        pass


if __name__ == "__main__":
    main()
