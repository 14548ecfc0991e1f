"""Topology drains: one real worker draining a pre-loaded backlog (fan-out: PostCreated on posts.v1).

The worker's consumer group is committed at the topic's end offsets first, then the backlog is
produced, then the worker starts: it reads exactly the backlog. The drain is timed from the first
applied batch to the last (``fanout:wm`` in Redis reaching the backlog's end offsets), and the
worker's CPU time (``/proc/<pid>/stat``, also per thread) over the same window. Optional ``py-spy``
flame graph of that window (attached at the first applied batch: start-up left out).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from bench import ceilings
from core.settings import Settings
from ops.workers import workers
from stores import progress
from stores import users as user_store
from streams.admin import apply_all
from streams.catalog import POSTS
from streams.producer import EventProducer
from topologies.faust_runtime import group_id

TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` and its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def thread_cpu_s(pid: int) -> dict[str, float]:
    """CPU seconds per thread of ``pid``: ``"<tid> <name>"``, the main thread (tid ``pid``) labelled."""
    out: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended
            continue
        label = "main (asyncio loop: Faust)" if task.name == str(pid) else f"{task.name} {name}"
        out[label] = (int(fields[11]) + int(fields[12])) / TICK
    return out


def end_offsets(s: Settings, topic: str) -> dict[int, int]:
    """High watermarks of every partition of ``topic``."""
    c = Consumer({"bootstrap.servers": s.kafka_bootstrap, "group.id": f"bench-peek-{uuid.uuid4().hex[:6]}"})
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
    finally:
        c.close()


def commit_at(s: Settings, group: str, topic: str, offsets: dict[int, int]) -> None:
    """Commit ``group``'s offsets of ``topic`` (the group must have no live member)."""
    c = Consumer({"bootstrap.servers": s.kafka_bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        c.commit(offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()], asynchronous=False)
    finally:
        c.close()


def register(r: Any, users: list[str]) -> None:
    """Mark the bench's authors registered (the write API's read-your-writes mark)."""
    p = r.pipeline(transaction=False)
    for u in users:
        p.set(user_store.k_registered(u), "1", ex=3600)
    p.execute()


def drain(base: Settings, s: Settings, r: Any, posts: list[dict[str, Any]], deliveries: dict[int, int],
          *, knobs: dict[str, Any], profile: Path | None = None, timeout_s: float = 600) -> dict[str, Any]:
    """Produce ``posts`` as a backlog of PostCreated, run one fan-out worker over it, time the drain.

    ``deliveries``: post id -> timeline writes the post causes (for deliveries/s).
    """
    register(r, sorted({p["author_id"] for p in posts}))
    res = drain_topology(base, s, r, "fanout", POSTS.resolved(s).name, [("PostCreated", p) for p in posts],
                         [deliveries[p["post_id"]] for p in posts], knobs=knobs, profile=profile,
                         timeout_s=timeout_s)
    names = {"events": "posts", "events_timed": "posts_timed", "weight_timed": "deliveries_timed",
             "weight_per_s": "deliveries_per_s", "weight_per_cpu_s": "deliveries_per_cpu_s",
             "events_per_s": "posts_per_s", "events_per_cpu_s": "posts_per_cpu_s"}
    return {names.get(k, k): v for k, v in res.items()}


def drain_topology(base: Settings, s: Settings, r: Any, topology: str, topic: str,
                   events: list[tuple[str, dict[str, Any]]], weights: list[int], *, knobs: dict[str, Any],
                   profile: Path | None = None, timeout_s: float = 600) -> dict[str, Any]:
    """Produce ``events`` (record name, value) on ``topic`` as a backlog, run one ``topology`` worker
    over it, and time the drain by the topology's progress marks (:mod:`stores.progress`).

    ``weights``: per event, the unit of work it counts for (a post's deliveries; 1 per event).
    """
    tag = uuid.uuid4().hex[:8]
    suffix = f"-drain-{tag}"
    apply_all(base)  # topics and schemas exist (a fresh stack)
    start = end_offsets(s, topic)
    commit_at(s, group_id(s.model_copy(update={"topology_group_suffix": suffix}), topology), topic, start)
    offset_weight: dict[tuple[int, int], int] = {}
    with EventProducer(base) as prod:
        futs = [(prod.submit(name, value), w) for (name, value), w in zip(events, weights)]
        for f, w in futs:
            rep = f.result(timeout=60)
            offset_weight[(rep.partition, rep.offset)] = w
    end = end_offsets(s, topic)
    want = {p: o - 1 for p, o in end.items() if o > start.get(p, 0)}
    consume = ceilings.kafka_consume(s, topic, start, end)["value"]
    mark = progress.key(topology)
    r.delete(mark)
    log_dir = Path(tempfile.mkdtemp(prefix=f"bench-{topology}-drain-"))
    spy = None
    with workers(s, (topology,), log_dir=log_dir, topology_group_suffix=suffix, **knobs) as procs:
        pid = procs[0].pid
        spy_bin = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        deadline = time.monotonic() + timeout_s
        first: tuple[float, float, dict[int, int]] | None = None
        wm: dict[int, int] = {}
        while time.monotonic() < deadline:
            raw = r.hgetall(mark)
            wm = {int(k.decode().rsplit(":", 1)[1]): int(v) for k, v in raw.items()
                  if k.decode().rsplit(":", 1)[0] == topic}
            if wm and first is None:
                first = (time.perf_counter(), cpu_s(pid), dict(wm))
                threads0 = thread_cpu_s(pid)
                if profile is not None and Path(spy_bin).exists():  # the drain only, not the start-up
                    # by function, not line: a flame graph small enough to keep; .txt: collapsed stacks
                    fmt = ["--function"] + (["--format", "raw"] if profile.suffix == ".txt" else [])
                    spy = subprocess.Popen([spy_bin, "record", "-p", str(pid), "-o", str(profile), "-r", "200",
                                            "-d", str(int(timeout_s)), "--nonblocking", *fmt],
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if all(wm.get(p, -1) >= o for p, o in want.items()):
                break
            time.sleep(0.01)
        t_end, c_end = time.perf_counter(), cpu_s(pid)
        threads = {k: v - threads0.get(k, 0) for k, v in thread_cpu_s(pid).items()} if first else {}
        if spy is not None:
            spy.send_signal(2)  # SIGINT: py-spy writes the flame graph and exits
            spy.wait(timeout=60)
    done = all(wm.get(p, -1) >= o for p, o in want.items())
    log_file = str(log_dir / f"{topology}.log")
    if first is None:
        return {"error": "worker applied nothing", "worker_log": log_file}
    t0, c0, wm0 = first
    counted = [w for (p, o), w in offset_weight.items() if o > wm0.get(p, start.get(p, 0) - 1)]
    n = sum(counted)
    wall, cpu = t_end - t0, c_end - c0
    return {"raw_consume_per_s": consume, "consume_ratio": (len(counted) / wall) / consume,
            "events": len(events), "events_timed": len(counted), "weight_timed": n, "drained": done,
            "wall_s": wall, "worker_cpu_s": cpu, "weight_per_s": n / wall,
            "weight_per_cpu_s": n / cpu if cpu else None, "events_per_s": len(counted) / wall,
            "events_per_cpu_s": len(counted) / cpu if cpu else None,
            "worker_log": log_file, "flame_graph": str(profile) if spy is not None else None,
            # where the worker's CPU went over the timed window, busiest threads first (main: the
            # asyncio loop, i.e. Faust; the busiest other Python thread: the batch processing)
            "thread_cpu_s": dict(sorted(((k, round(v, 2)) for k, v in threads.items() if v > 0),
                                        key=lambda kv: -kv[1]))}
