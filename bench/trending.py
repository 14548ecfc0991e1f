"""Benchmark the trending job: ``python -m bench.trending [--events N]``.

Reports, in one run on this machine: the raw producer ceiling (pre-encoded msgs/s), events/s
through the job at parallelism 1 (= per core; MiniCluster start-up excluded by timing from the
first to the last Redis update), and the delay from the watermark passing a window's end to
that window's list being in Redis (live phase: events stamped with wall-clock time, so the
watermark passes ``end`` when an event at ``end + out_of_orderness`` is produced).
``--moderation both`` runs the job twice in the same run, on the same backlog and ceilings:
without moderation, then with it (``moderation-verdicts.v1``'s role played by a bench topic: one
ALLOW verdict per 100 engagements, on post ``i % 500``, interleaved in event time; the live phase
produces one per second), so every engagement also goes through the keyed ``moderate`` step.
``--idleness-ms`` sets the job's idleness (default: the job's, 30 s; the empty posts topic holds
the first window back that long, while the job decodes the backlog).
Writes ``bench/results/trending.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
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
    ap.add_argument("--moderation", choices=("off", "on", "both"), default="off",
                    help="run the job without the moderation step, with it, or both in this run")
    ap.add_argument("--moderated-first", action="store_true",
                    help="with --moderation both: the job with moderation first (the first job also warms the JVM)")
    ap.add_argument("--idleness-ms", type=int, default=None, help="the job's idleness_ms (default: the job's)")
    args = ap.parse_args(argv)
    extra = dict(kv.split("=", 1) for kv in args.conf)
    from stores.redis import client
    from stores.trending import keys

    settings = get_settings()
    tag = uuid.uuid4().hex[:8]
    posts, eng, out, late, verdicts = (f"bench-{n}-{tag}" for n in ("posts", "eng", "trending", "late", "verdicts"))
    modes = {"off": [False], "on": [True], "both": [False, True]}[args.moderation]
    if args.moderated_first:
        modes.reverse()
    # each job run reads its own copy of the backlog (a run's live events must not reach the next run)
    engs = [eng if i == 0 else f"{eng}-{i}" for i in range(len(modes))]
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    for f in admin.create_topics([NewTopic(t, 1, 1) for t in (posts, *engs, out, late, verdicts)]).values():
        f.result(30)
    serde = Serde(settings.registry_url)
    r = client(settings)
    # the engaging users are registered (the write API's mark): the job dead-letters engagements
    # by users who never registered (UnknownUser, issue 14 item 5)
    from stores.users import k_registered

    r.mset({k_registered(u): 1 for u in ("u", *(f"u{i}" for i in range(97)))})
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
    for copy in engs[1:]:  # untimed
        for data in payloads:
            while True:
                try:
                    p.produce(copy, data)
                    break
                except BufferError:
                    p.poll(0.01)
        assert p.flush(60) == 0
    if True in modes:  # the verdicts, after the ceiling: one per 100 engagements, interleaved in event time
        for i in range(0, args.events, 100):
            p.produce(verdicts, _verdict(serde, verdicts, i % 500, t0 + i * args.spacing_ms))
            p.poll(0)
        assert p.flush(60) == 0

    # 1b) the Python stage alone, no Flink: decode + contributions per event (a ceiling for Python work)
    from topologies.trending.logic import contributions

    t = time.perf_counter()
    for data in payloads:
        d = serde.decode(data)
        contributions(d.name, d.value)
    decode_rate = args.events / (time.perf_counter() - t)

    runs = {}
    for moderated, run_eng in zip(modes, engs):
        r.delete(*keys(scope), *keys(f"hashtags:{SPEC.label}"))
        runs["with_moderation" if moderated else "without_moderation"] = _job_run(
            settings, args, extra, t0, p, serde, r, scope, moderated,
            topics=(posts, run_eng, out, late, verdicts), group=f"bench-{tag}-{int(moderated)}")
    result = {
        "events": args.events, "spacing_ms": args.spacing_ms, "conf": extra, "producer_msgs_per_s": round(producer_rate),
        "python_decode_per_s": round(decode_rate), "idleness_ms": args.idleness_ms,
        "window": {"size_ms": SPEC.size_ms, "slide_ms": SPEC.slide_ms, "ooo_ms": SPEC.out_of_orderness_ms},
        "command": "python -m bench.trending " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    for run in runs.values():
        run["job_vs_producer"] = round(run["job_events_per_s_per_core"] / producer_rate, 4)
    if len(runs) == 1:
        result.update(next(iter(runs.values())))
    else:
        result.update(runs)
        result["order"] = list(runs)  # the first job also starts and warms the JVM
        result["moderation_rate_ratio"] = round(runs["with_moderation"]["job_events_per_s_per_core"]
                                                / runs["without_moderation"]["job_events_per_s_per_core"], 3)
    p.flush(30)
    print(json.dumps(result, indent=2))
    outdir = Path(__file__).resolve().parent / "results"
    outdir.mkdir(exist_ok=True)
    (outdir / args.out).write_text(json.dumps(result, indent=2))
    return result


def _verdict(serde: Serde, topic: str, post_id: int, at_ms: int) -> bytes:
    """An ALLOW verdict (the moderation topology's effective decision) on ``post_id`` at ``at_ms``."""
    from topologies.moderation.logic import verdict_value

    ctx = {"content_key": f"post:{post_id}", "kind": "POST", "content_id": post_id, "post_id": post_id,
           "author_id": "a"}
    m = {"decision": "ALLOW", "scores": {"spam": 0.01}, "reasons": [], "model_version": "bench",
         "content_version": at_ms, "event_id": "bench"}
    return serde.encode("ModerationVerdict", verdict_value(ctx, m, None, at_ms=at_ms), topic)


def _job_run(settings, args, extra, t0, p, serde, r, scope, moderated, topics, group) -> dict:
    """One job on the backlog: drain rate (first to last Redis update), then the live phase's delays."""
    from stores.trending import keys
    from topologies.trending.app import start
    from topologies.trending.job import TrendingConfig

    posts, eng, out, late, verdicts = topics
    opts = {} if args.idleness_ms is None else {"idleness_ms": args.idleness_ms}
    if moderated:
        opts.update(post_topic=posts, verdict_topic=verdicts)
    # 2) job throughput: first to last Redis update while it drains the backlog
    cfg = TrendingConfig(windows=(SPEC,), k=10, source_topics=(posts, eng), trending_topic=out,
                         late_topic=late, group_id=group, **opts)
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
    last_verdict_s = 0
    while time.monotonic() < live_end:
        now = time.time_ns() // 1_000_000
        v = {"event_id": str(uuid.uuid4()), "occurred_at": now, "actor_id": "u", "schema_version": 1,
             "post_id": 1, "post_author_id": "a", "user_id": "u"}
        p.produce(eng, serde.encode("Liked", v, eng))
        if moderated and now // 1000 != last_verdict_s:  # the verdicts topic's watermark keeps up
            last_verdict_s = now // 1000
            p.produce(verdicts, _verdict(serde, verdicts, 1, now))
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
    return {
        "moderation": moderated, "job_events_per_s_per_core": round(job_rate),
        "job_events_per_s_incl_startup": round(job_rate_incl_startup), "first_window_end_offset_ms": first[1] - t0,
        "drain_s": round(done - submitted, 1),
        "watermark_to_redis_ms": {"n": len(delays), "median": statistics.median(delays) if delays else None,
                                  "max": max(delays) if delays else None},
    }


if __name__ == "__main__":
    main()
