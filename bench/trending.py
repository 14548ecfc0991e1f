"""Benchmark the trending job: ``python -m bench.trending [--events N]``.

Reports, in one run on this machine: the raw producer ceiling (pre-encoded msgs/s), events/s
through the job at parallelism 1 (= per core; MiniCluster start-up excluded by timing from the
first to the last Redis update), and the delay from the watermark passing a window's end to
that window's list being in Redis (live phase: events stamped with wall-clock time, so the
watermark passes ``end`` when an event at ``end + out_of_orderness`` is produced).
Writes ``bench/results/trending.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from core.settings import get_settings
from streams.serde import Serde
from topologies.trending.logic import WindowSpec

SPEC = WindowSpec(10_000, 2_000, lateness_ms=0, out_of_orderness_ms=500)


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark and print/save its figures."""
    ap = argparse.ArgumentParser(prog="python -m bench.trending")
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--live-s", type=int, default=30)
    ap.add_argument("--spacing-ms", type=int, default=20,
                    help="event-time gap between backlog events (20: 100 events per 2 s slide)")
    ap.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE",
                    help="extra Flink configuration, e.g. python.execution-mode=thread (repeatable)")
    ap.add_argument("--out", default="trending.json", help="file name under bench/results")
    args = ap.parse_args(argv)
    extra = dict(kv.split("=", 1) for kv in args.conf)
    from stores.redis import client
    from stores.trending import keys
    from topologies.trending.app import start
    from topologies.trending.job import TrendingConfig

    settings = get_settings()
    tag = uuid.uuid4().hex[:8]
    posts, eng, out, late = (f"bench-{n}-{tag}" for n in ("posts", "eng", "trending", "late"))
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    for f in admin.create_topics([NewTopic(t, 1, 1) for t in (posts, eng, out, late)]).values():
        f.result(30)
    serde = Serde(settings.registry_url)
    r = client(settings)
    scope = f"posts:{SPEC.label}"
    r.delete(*keys(scope), *keys(f"hashtags:{SPEC.label}"))

    # 1) pre-encode engagements spread over event time, then the raw producer ceiling
    t0 = (time.time_ns() // 1_000_000) - 3_600_000
    payloads = []
    for i in range(args.events):
        v = {"event_id": str(uuid.uuid4()), "occurred_at": t0 + i * args.spacing_ms, "actor_id": "u", "schema_version": 1,
             "post_id": i % 500, "post_author_id": "a", "user_id": f"u{i % 97}"}
        payloads.append(serde.encode("Liked", v, eng))
    p = Producer({"bootstrap.servers": settings.kafka_bootstrap, "linger.ms": 5, "enable.idempotence": True})
    t = time.perf_counter()
    for data in payloads:
        while True:
            try:
                p.produce(eng, data)
                break
            except BufferError:
                p.poll(0.01)
    assert p.flush(60) == 0
    producer_rate = args.events / (time.perf_counter() - t)

    # 1b) the Python stage alone, no Flink: decode + contributions per event (a ceiling for Python work)
    from topologies.trending.logic import contributions

    t = time.perf_counter()
    for data in payloads:
        d = serde.decode(data)
        contributions(d.name, d.value)
    decode_rate = args.events / (time.perf_counter() - t)

    # 2) job throughput: first to last Redis update while it drains the backlog
    cfg = TrendingConfig(windows=(SPEC,), k=10, source_topics=(posts, eng), trending_topic=out,
                         late_topic=late, group_id=f"bench-{tag}")
    submitted = time.monotonic()
    job = start(settings, cfg, checkpoint_dir=Path(tempfile.mkdtemp()) / "chk", restore=False,
                checkpoint_interval_ms=10_000, job_name="trending-bench",
                extra=extra)
    mkey = keys(scope)[2]
    last_end = t0 + (args.events * args.spacing_ms // SPEC.slide_ms) * SPEC.slide_ms - SPEC.slide_ms
    first = None
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        end = r.hget(mkey, "window_end")
        if end is not None and first is None:
            first = (time.monotonic(), int(end))
        if end is not None and int(end) >= last_end - SPEC.size_ms:
            break
        time.sleep(0.05)
    done = time.monotonic()
    assert first is not None, "the job produced nothing"
    covered_ms = int(r.hget(mkey, "window_end")) - first[1]
    events_done = covered_ms / args.spacing_ms
    job_rate = events_done / max(done - first[0], 1e-3)
    job_rate_incl_startup = args.events / (done - submitted)

    # 3) live: one event per 50 ms stamped now; delay = Redis updated_at - (window end + ooo)
    delays = []
    live_end = time.monotonic() + args.live_s
    seen: set[int] = set()
    while time.monotonic() < live_end:
        now = time.time_ns() // 1_000_000
        v = {"event_id": str(uuid.uuid4()), "occurred_at": now, "actor_id": "u", "schema_version": 1,
             "post_id": 1, "post_author_id": "a", "user_id": "u"}
        p.produce(eng, serde.encode("Liked", v, eng))
        p.poll(0)
        meta = r.hgetall(mkey)
        if meta and int(meta[b"window_end"]) > now - 60_000:
            end = int(meta[b"window_end"])
            if end not in seen:
                seen.add(end)
                delays.append(int(meta[b"updated_at"]) - (end + SPEC.out_of_orderness_ms))
        time.sleep(0.05)
    p.flush(30)
    job.cancel().result()
    delays = delays[1:]  # the first live window may mix with the backlog
    result = {
        "events": args.events, "spacing_ms": args.spacing_ms, "conf": extra, "producer_msgs_per_s": round(producer_rate),
        "python_decode_per_s": round(decode_rate),
        "job_events_per_s_per_core": round(job_rate), "job_vs_producer": round(job_rate / producer_rate, 4),
        "job_events_per_s_incl_startup": round(job_rate_incl_startup), "first_window_end_offset_ms": first[1] - t0,
        "drain_s": round(done - submitted, 1),
        "window": {"size_ms": SPEC.size_ms, "slide_ms": SPEC.slide_ms, "ooo_ms": SPEC.out_of_orderness_ms},
        "watermark_to_redis_ms": {"n": len(delays), "median": statistics.median(delays) if delays else None,
                                  "max": max(delays) if delays else None},
    }
    print(json.dumps(result, indent=2))
    outdir = Path(__file__).resolve().parent / "results"
    outdir.mkdir(exist_ok=True)
    (outdir / args.out).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
