"""The bench harness: samplers of Kafka offsets and process resources, and the scenario runner.

A run measures its ceilings first (:mod:`bench.ceilings`), then drives the platform through the
public API with the synthetic workload (:mod:`core.workload`): HTTP load (noop ceiling, writes, feed
reads) through wrk (:mod:`bench.http_load`), setup and write-to-visible polling through the Python
client (:class:`feedstream.seed.ApiDriver`), and builds a report (:mod:`bench.report`) with a scale model (:mod:`bench.scale`).
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psutil

from core.settings import Settings


def feed_items(body: Any) -> tuple[list[int], str | None]:
    """Post ids and next cursor of a feed response, whatever the read API names them."""
    if not isinstance(body, Mapping):
        return [], None
    items = next((body[k] for k in ("items", "posts", "feed", "data") if isinstance(body.get(k), list)), [])
    ids = []
    for it in items:
        if isinstance(it, Mapping):
            pid = it.get("post_id", it.get("id"))
            if pid is None and isinstance(it.get("post"), Mapping):
                pid = it["post"].get("post_id", it["post"].get("id"))
            if pid is not None:
                ids.append(int(pid))
        elif isinstance(it, (int, str)) and str(it).isdigit():
            ids.append(int(it))
    cursor = next((body[k] for k in ("next_cursor", "cursor", "next") if isinstance(body.get(k), str)), None)
    return ids, cursor


@dataclass
class KafkaProbe:
    """Samples topic end offsets and consumer-group committed offsets every ``interval_s``."""

    settings: Settings
    topics: Sequence[str]
    t_origin: float
    interval_s: float = 1.0
    samples: list[tuple[float, dict[str, int], dict[tuple[str, str], int]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        from confluent_kafka.admin import AdminClient

        self._admin = AdminClient({"bootstrap.servers": self.settings.kafka_bootstrap})
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-kafka-probe", daemon=True)
        self.error: str | None = None
        self.active: set[str] = set()

    def sample(self) -> tuple[dict[str, int], dict[tuple[str, str], int]]:
        """End offsets per topic (summed over partitions) and committed offsets per (group, topic)."""
        from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
        from confluent_kafka.admin import OffsetSpec

        md = self._admin.list_topics(timeout=5)
        tps = [TopicPartition(t, p) for t in self.topics if t in md.topics for p in md.topics[t].partitions]
        ends: dict[str, int] = {t: 0 for t in self.topics if t in md.topics}
        if tps:
            futs = self._admin.list_offsets({tp: OffsetSpec.latest() for tp in tps}, request_timeout=5)
            for tp, f in futs.items():
                ends[tp.topic] += max(0, f.result().offset)
        committed: dict[tuple[str, str], int] = {}
        listed = self._admin.list_consumer_groups(request_timeout=5).result().valid
        groups = [g.group_id for g in listed]
        self.active = {g.group_id for g in listed if getattr(g.state, "name", str(g.state)) not in ("EMPTY", "DEAD")}
        for g in groups:
            res = self._admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(g)])[g].result()
            for tp in res.topic_partitions:
                if tp.topic in ends and tp.offset >= 0:
                    committed[(g, tp.topic)] = committed.get((g, tp.topic), 0) + tp.offset
        return ends, committed

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                ends, committed = self.sample()
                self.samples.append((time.perf_counter() - self.t_origin, ends, committed))
            except Exception as exc:  # noqa: BLE001 - recorded and reported; the probe must not kill the run
                self.error = repr(exc)
            self._stop.wait(self.interval_s)

    def start(self) -> KafkaProbe:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def lag(self, topic: str) -> dict[str, int]:
        """Current lag of each active group (one with members) that committed on ``topic``."""
        ends, committed = self.sample()
        return {g: ends.get(t, 0) - off for (g, t), off in committed.items() if t == topic and g in self.active}


def pid_processes(settings: Settings) -> dict[str, psutil.Process]:
    """Engines and platform services running from pid files under the state dir, plus this process."""
    from ops.local import procs, stack
    from ops.platform import SERVICES

    out = {}
    for name in [*stack.ENGINE_NAMES, *(s.name for s in SERVICES)]:
        running = procs.read_pidfile(stack.pid_path(settings, name))
        if running is not None:
            try:
                out[name] = psutil.Process(running.pid)
            except psutil.Error:
                pass
    out["bench"] = psutil.Process(os.getpid())
    return out


@dataclass
class ResourceSampler:
    """CPU seconds (process and children) and RSS per named process, sampled every ``interval_s``."""

    procs: Mapping[str, psutil.Process]
    t_origin: float
    interval_s: float = 1.0
    samples: list[tuple[float, dict[str, tuple[float, float]]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-resources", daemon=True)

    def _one(self) -> dict[str, tuple[float, float]]:
        out = {}
        for name, p in self.procs.items():
            try:
                family = [p, *(p.children(recursive=True) if name != "bench" else [])]
                cpu = sum(sum(q.cpu_times()[:2]) for q in family)
                rss = sum(q.memory_info().rss for q in family)
                out[name] = (cpu, rss)
            except psutil.Error:
                continue
        return out

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.perf_counter() - self.t_origin, self._one()))
            self._stop.wait(self.interval_s)

    def start(self) -> ResourceSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.samples.append((time.perf_counter() - self.t_origin, self._one()))

    def cores_used(self, name: str, t0: float, t1: float) -> float | None:
        """Mean cores ``name`` used between ``t0`` and ``t1`` (s since origin)."""
        pts = [(t, s[name][0]) for t, s in self.samples if name in s]
        a = next(((t, c) for t, c in pts if t >= t0 - 0.5), None)
        b = next(((t, c) for t, c in reversed(pts) if t <= t1 + 0.5), None)
        if a is None or b is None or b[0] - a[0] < 0.5:
            return None
        return (b[1] - a[1]) / (b[0] - a[0])

    def summary(self) -> dict[str, dict[str, float]]:
        """Per process: mean and max CPU % (of one core) and max RSS over the run."""
        out = {}
        for name in self.procs:
            pts = [(t, s[name]) for t, s in self.samples if name in s]
            if len(pts) < 2:
                continue
            pct = [100 * (b[1][0] - a[1][0]) / (b[0] - a[0]) for a, b in itertools.pairwise(pts) if b[0] > a[0]]
            out[name] = {"cpu_mean_pct": round(100 * (pts[-1][1][0] - pts[0][1][0]) / (pts[-1][0] - pts[0][0]), 1),
                         "cpu_max_pct": round(max(pct), 1) if pct else 0.0,
                         "rss_max_mb": round(max(p[1][1] for p in pts) / 2**20, 1),
                         "cpu_series": {"t": [round(p[0], 2) for p in pts[1:]], "pct": [round(x, 1) for x in pct]}}
        return out


# ----------------------------------------------------------------------------- the scenario runner
@dataclass(frozen=True)
class Scenario:
    """A named, bounded bench run: sizes, phase lengths, concurrency and the error threshold."""

    name: str
    users: int = 60
    ceiling_s: float = 2.0
    write_s: float = 20.0
    read_s: float = 10.0
    write_concurrency: int = 16        # wrk connections for writes
    read_concurrency: int = 16         # wrk connections for the noop ceiling and feed reads
    max_ops: int = 20_000
    prime_posts: int = 20              # posts made first (Python client) so engagements have targets
    write_templates: int = 4000        # distinct write requests wrk rotates through
    e2e_interval_s: float = 0.25       # one sampled post (Python client, polled to visible) per interval
    e2e_sample_prob: float = 0.25
    e2e_followers: int = 3
    e2e_timeout_s: float = 10.0
    settle_s: float = 15.0
    error_threshold: float = 0.01


SCENARIOS = {
    "smoke": Scenario("smoke", users=40, write_s=15.0, read_s=10.0, settle_s=10.0),
    "standard": Scenario("standard", users=300, ceiling_s=5, write_s=60, read_s=30, max_ops=200_000,
                         settle_s=30),
}
TOPOLOGY_INPUTS = {"graph": ("graph.v1",), "fanout": ("posts.v1",), "engagement": ("engagements.v1",),
                   "trending": ("posts.v1", "engagements.v1")}


def _series(probe: KafkaProbe, topic: str, group_prefix: str | None = None) -> list[tuple[float, int]]:
    """(t, value) of a topic's end offset, or of the best-moving committed offset of matching groups."""
    if group_prefix is None:
        return [(t, ends.get(topic, 0)) for t, ends, _ in probe.samples]
    groups = {g for _, _, c in probe.samples for (g, tp) in c if tp == topic and g.startswith(group_prefix)}
    best: list[tuple[float, int]] = []
    for g in groups:
        s = [(t, c[(g, topic)]) for t, _, c in probe.samples if (g, topic) in c]
        if s and (not best or s[-1][1] - s[0][1] > best[-1][1] - best[0][1]):
            best = s
    return best


def active_rate(series: Sequence[tuple[float, int]]) -> dict[str, Any]:
    """Records per second while the counter was moving (idle time before and after is not counted)."""
    moved = [i for i in range(1, len(series)) if series[i][1] > series[i - 1][1]]
    if not moved:
        return {"count": 0, "errors": 0, "error_rate": 0.0, "duration_s": 0.0, "rate_per_s": 0.0,
                "latency_ms": None}
    a, b = series[moved[0] - 1], series[moved[-1]]
    n = b[1] - a[1]
    return {"count": n, "errors": 0, "error_rate": 0.0, "duration_s": round(b[0] - a[0], 3),
            "rate_per_s": n / (b[0] - a[0]), "latency_ms": None}


def per_second(series: Sequence[tuple[float, int]]) -> dict[str, list[float]]:
    """A counter series as rates between consecutive samples."""
    pts = [(b[0], (b[1] - a[1]) / (b[0] - a[0])) for a, b in itertools.pairwise(series) if b[0] > a[0]]
    return {"t": [round(t, 2) for t, _ in pts], "v": [round(v, 1) for _, v in pts]}


async def _wait_drained(probe: KafkaProbe, topics: Sequence[str], timeout_s: float) -> float | None:
    """Seconds until every group on ``topics`` has lag 0 (None if not within ``timeout_s``)."""
    import asyncio

    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout_s:
        lags = [lag for t in topics for g, lag in (await asyncio.to_thread(probe.lag, t)).items()
                if g.startswith("feedstream-")]
        if all(lag <= 0 for lag in lags):
            return time.perf_counter() - t0
        await asyncio.sleep(0.5)
    return None


async def run(settings: Settings, sc: Scenario, echo=print) -> dict[str, Any]:
    """Run scenario ``sc`` against the running stack and return the report (not yet saved)."""
    import asyncio
    import random
    import re

    from bench import ceilings as ceil
    from bench import http_load, scale
    from bench import report as rep
    from bench.dlq import dead_letters_since, errors_of
    from core.settings import REPO_ROOT
    from core.workload import Op, OpStream, WorkloadConfig, build_graph, seed_plan, to_request
    from ops.seed import ApiDriver, SeedError, run_all
    from streams.catalog import ALL_TOPICS

    t_origin = time.perf_counter()
    run_id, started_at = ceil.new_run_id(), ceil.now_iso()
    started_ms = int(time.time() * 1000)
    notes: list[str] = []
    phases: list[dict[str, Any]] = []

    def phase(name: str, start: float) -> None:
        phases.append({"name": name, "start_s": round(start - t_origin, 2),
                       "end_s": round(time.perf_counter() - t_origin, 2)})
        echo(f"  {name}: {time.perf_counter() - start:.1f}s")

    driver = ApiDriver(settings)
    status, _ = await driver.get_raw("/healthz")
    if status != 200:
        await driver.aclose()
        raise SeedError(f"the API at {settings.api_url} does not answer /healthz (status {status}); "
                        "start the platform with `make run`")
    paths = await driver.openapi_paths()
    has_feed = any(re.fullmatch(r"/v1/users/\{[^}]+\}/feed", p) and "GET" in m for p, m in paths.items())
    has_post_view = any(re.fullmatch(r"/v1/posts/\{[^}]+\}", p) and "GET" in m for p, m in paths.items())
    procs = pid_processes(settings)
    resources = ResourceSampler(procs, t_origin).start()
    probe = KafkaProbe(settings, [t.name for t in ALL_TOPICS], t_origin).start()
    samples: list[rep.Sample] = []
    try:
        echo(f"bench {sc.name} (run {run_id}) against {settings.api_url}")
        t = time.perf_counter()
        c_list = [await asyncio.to_thread(f, settings, run_id, sc.ceiling_s) for f in
                  (ceil.redis_zadd, ceil.redis_zrevrange, ceil.kafka_producer, ceil.cassandra_insert)]
        noop = await asyncio.to_thread(ceil.api_noop, settings, run_id, sc.read_concurrency, sc.ceiling_s)
        ceilings = {c["name"]: c for c in [*c_list, noop]}
        phase("ceilings", t)

        t = time.perf_counter()
        cfg = WorkloadConfig(users=sc.users, prefix=f"b{run_id[:6]}-u", seed=int(run_id[:8], 16))
        plan = seed_plan(cfg)
        for step in ("register", "follow"):
            res = await run_all(driver, [(to_request(op, []), None) for op in plan[step]], 16)
            bad = [r for r in res if not r.ok]
            if len(bad) > sc.error_threshold * len(res):
                raise SeedError(f"setup {step}: {len(bad)} of {len(res)} failed, e.g. {bad[0].status} {bad[0].body}")
        graph_lag = await _wait_drained(probe, ["graph.v1"], sc.settle_s)
        if graph_lag is None:
            notes.append(f"graph topology had not caught up {sc.settle_s:.0f}s after setup")
        phase("setup", t)

        graph = build_graph(cfg)
        followers = graph.followers()
        stream = OpStream(cfg, graph)
        rng = random.Random(run_id)
        post_ids: list[int] = []
        watchers: list[asyncio.Task] = []
        e2e_slots = asyncio.Semaphore(8)

        async def watch(post_id: int, reader: str, sent: float) -> None:
            async with e2e_slots:
                req = to_request(Op("feed", reader), [], cfg.feed_limit)
                while time.perf_counter() - sent < sc.e2e_timeout_s:
                    res = await driver.send(req)
                    if res.ok and post_id in feed_items(res.body)[0]:
                        end = time.perf_counter()
                        samples.append(rep.Sample(end - t_origin, end - sent, True, "e2e"))
                        return
                    await asyncio.sleep(0.05)
                samples.append(rep.Sample(time.perf_counter() - t_origin, sc.e2e_timeout_s, False, "e2e"))

        t = time.perf_counter()
        prime = [(to_request(stream.post(), []), f"bench-{run_id}-prime-{i}") for i in range(sc.prime_posts)]
        primed = await run_all(driver, prime, 8)
        post_ids += [int(r.body["post_id"]) for r in primed if r.ok]
        if not post_ids:
            raise SeedError(f"could not create any post to engage with, e.g. {primed[0].status} {primed[0].body}")
        write_ops = [stream.write(len(post_ids)) for _ in range(sc.write_templates)]
        write_reqs = [to_request(op, post_ids) for op in write_ops]
        # wrk replays these templates in a loop, so a (follower, followee) edge they follow or
        # unfollow flips back and forth: never sample such a reader for write-to-visible
        churned = {(op.actor, op.target) for op in write_ops if op.kind in ("follow", "unfollow")}
        cap = http_load.write_rate_cap(write_reqs, settings)
        delay_ms = http_load.bounded_delay_ms(sc.write_concurrency, cap)
        notes.append(f"writes: wrk offered at most {cap:,.0f} req/s ({sc.write_concurrency} connections, "
                     f"{delay_ms:.1f} ms pause each) so no user passes 80% of its per-user limit and no "
                     f"forwarded address passes 80% of the per-IP limit; 429s count as errors")
        phase("prime", t)

        async def e2e_sampler(stop: asyncio.Event) -> None:
            i = 0
            while not stop.is_set():
                op = stream.post()
                sent = time.perf_counter()
                res = await driver.send(to_request(op, post_ids), idempotency_key=f"bench-{run_id}-e2e-{i}")
                i += 1
                samples.append(rep.Sample(time.perf_counter() - t_origin, time.perf_counter() - sent, res.ok,
                                          "e2e write"))
                if res.ok:
                    post_ids.append(int(res.body["post_id"]))
                    readers = sorted(r for r in followers.get(op.actor, ()) if (r, op.actor) not in churned)
                    for reader in rng.sample(readers, min(sc.e2e_followers, len(readers))):
                        watchers.append(asyncio.create_task(watch(post_ids[-1], reader, sent)))
                try:
                    await asyncio.wait_for(stop.wait(), sc.e2e_interval_s)
                except TimeoutError:
                    pass

        t = time.perf_counter()
        stop = asyncio.Event()
        sampler = asyncio.create_task(e2e_sampler(stop)) if has_feed else None
        try:
            templates = [http_load.wrk_request(driver, r, unique=True) for r in write_reqs]
            write_stats = await asyncio.to_thread(
                http_load.run_wrk, settings.api_url, templates, duration_s=sc.write_s, connections=sc.write_concurrency, unique=True,
                key_prefix=f"bench-{run_id}", delay_ms=delay_ms)
        finally:
            stop.set()
            if sampler is not None:
                await sampler
        write_window = (t - t_origin, time.perf_counter() - t_origin)
        phase("writes", t)

        t = time.perf_counter()
        drain = await _wait_drained(probe, ["posts.v1", "engagements.v1", "graph.v1"], sc.settle_s)
        if watchers:
            await asyncio.wait(watchers, timeout=sc.e2e_timeout_s + 5)
        if drain is None:
            notes.append(f"topologies had not drained their input {sc.settle_s:.0f}s after the write phase")
        drain_window = (write_window[0], time.perf_counter() - t_origin)
        phase("drain", t)

        read_stats = None
        if has_feed:
            read_ops = [stream.read(len(post_ids) if has_post_view else 0) for _ in range(sc.write_templates)]
            reads = [to_request(op, post_ids, cfg.feed_limit) for op in read_ops]
            read_reqs = [http_load.wrk_request(driver, req) for req in reads]
            read_cap = http_load.read_rate_cap(reads, settings)
            read_delay_ms = http_load.bounded_delay_ms(sc.read_concurrency, read_cap)
            if read_cap is not None:
                notes.append(f"reads: wrk offered at most {read_cap:,.0f} req/s ({sc.read_concurrency} connections, "
                             f"{read_delay_ms:.1f} ms pause each) so no user or forwarded address passes 80% of "
                             f"its read limit; 429s count as errors")
            if any(op.pages > 1 for op in read_ops):
                notes.append("feed reads: wrk cannot follow cursors, so feed_page ops read their first page only")
            t = time.perf_counter()
            read_stats = await asyncio.to_thread(http_load.run_wrk, settings.api_url, read_reqs,
                                                 duration_s=sc.read_s, connections=sc.read_concurrency,
                                                 delay_ms=read_delay_ms)
            read_window = (t - t_origin, time.perf_counter() - t_origin)
            phase("reads", t)
    finally:
        probe.stop()
        resources.stop()
        await driver.aclose()

    th = sc.error_threshold
    missing_read = rep.not_available("read API missing: no GET /v1/users/{user_id}/feed on the running API")
    figures: dict[str, Any] = {
        "writes": rep.figure(write_stats, "req/s", ceilings, ["api_noop", "kafka_raw_producer"], th),
        "feed_reads": rep.figure(read_stats, "req/s", ceilings, ["api_noop", "redis_zrevrange"], th)
        if read_stats else missing_read,
    }
    e2e = [s for s in samples if s.kind == "e2e"]
    if not has_feed:
        figures["write_to_visible"] = missing_read
    else:
        st = rep.summarize(e2e, 1.0)
        f = rep.figure(st, "ms (p99)", ceilings, [], th)
        if f["status"] == "ok":
            f["value"] = f["latency_ms"]["p99"] if f.get("latency_ms") else None
        figures["write_to_visible"] = f
    dlq = active_rate(_series(probe, "dead-letters.v1"))["count"]
    # errors are charged to the topology that dead-lettered them (a trending job catching up
    # dead-letters late events, which are counted by design and are not fan-out's errors)
    by_group = await asyncio.to_thread(dead_letters_since, settings, started_ms)
    topo = {}
    for name, inputs in TOPOLOGY_INPUTS.items():
        st = {i: active_rate(_series(probe, i, f"feedstream-{name}")) for i in inputs}
        topo[name] = {i: {"consumed": v["count"], "rate_per_s": round(v["rate_per_s"], 1)} for i, v in st.items()}
    deliveries = active_rate(_series(probe, "timeline-updates.v1"))
    fan_in = active_rate(_series(probe, "posts.v1", "feedstream-fanout"))
    if fan_in["count"] == 0:
        figures["fanout_deliveries"] = rep.not_available("fan-out topology not running (no progress of a "
                                                         "feedstream-fanout group on posts.v1)")
    else:
        fan_err = errors_of(by_group, "feedstream-fanout")
        deliveries.update(errors=fan_err, error_rate=fan_err / max(1, fan_in["count"]))
        figures["fanout_deliveries"] = rep.figure(deliveries, "deliveries/s", ceilings,
                                                  ["redis_zadd_pipelined"], th)
    for name, topic, ceils in (("engagement", "engagements.v1", ["kafka_raw_producer", "cassandra_raw_insert"]),
                               ("trending", "posts.v1", ["kafka_raw_producer"])):
        # Faust groups are feedstream-<name>; the Flink job's Kafka source commits on checkpoints
        # under its own group (topologies/trending/job.py: TrendingConfig.group_id)
        group = "trending" if name == "trending" else f"feedstream-{name}"
        st = active_rate(_series(probe, topic, group))
        if name == "trending" and st["count"] == 0:
            st = active_rate(_series(probe, "trending.v1"))
        if st["count"] == 0:
            figures[f"{name}_throughput"] = rep.not_available(
                f"{name} topology not running or not committing offsets (no progress seen in Kafka)")
        else:
            err = errors_of(by_group, group, ignore_types=("LateEvent",))
            st.update(errors=err, error_rate=err / st["count"])
            figures[f"{name}_throughput"] = rep.figure(st, "events/s", ceilings, ceils, th)

    def per_core(fig: str, proc: str, window: tuple[float, float]) -> float | None:
        cores = resources.cores_used(proc, *window)
        f = figures.get(fig, {})
        return f["value"] / cores if f.get("status") == "ok" and cores and cores > 0.01 else None

    posts_made = len(post_ids)
    measured = scale.Measured(
        api_writes_per_core=per_core("writes", "api", write_window),
        api_reads_per_core=per_core("feed_reads", "api", read_window) if read_stats else None,
        fanout_deliveries_per_core=per_core("fanout_deliveries", "topology-fanout", drain_window),
        deliveries_per_post=deliveries["count"] / posts_made
        if posts_made and figures["fanout_deliveries"]["status"] == "ok" else None,
        redis_ops_per_node=ceilings["redis_zadd_pipelined"]["value"],
        redis_reads_per_node=ceilings["redis_zrevrange"]["value"],
        kafka_msgs_per_broker=ceilings["kafka_raw_producer"]["value"],
        cassandra_writes_per_node=ceilings["cassandra_raw_insert"]["value"],
        feed_p99_ms=(figures["feed_reads"].get("latency_ms") or {}).get("p99"))
    if probe.error:
        notes.append(f"kafka probe error: {probe.error}")
    notes.append(f"HTTP figures and the api_noop ceiling are driven by wrk ({http_load.WRK_NOTE}); the "
                 f"Python client only sets up, primes posts and samples write-to-visible (binding {len(driver.addresses)} "
                 "loopback source addresses)")
    notes.append("wrk latency percentiles include error answers; the time series hold Python-client samples only")
    if "api" not in procs:
        notes.append("no pid file for the API: its CPU and RSS are not in the resources table")
    series = rep.bucket_series(samples)
    series["rate_per_s"]["fanout deliveries"] = per_second(_series(probe, "timeline-updates.v1"))
    series["rate_per_s"]["engagement consumed"] = per_second(_series(probe, "engagements.v1", "feedstream-engagement"))
    res_summary = resources.summary()
    return {"schema": rep.SCHEMA, "run_id": run_id, "scenario": sc.name, "started_at": started_at,
            "finished_at": ceil.now_iso(), "duration_s": round(time.perf_counter() - t_origin, 2),
            "machine": rep.machine_info(), "git": rep.git_info(REPO_ROOT), "error_threshold": th,
            "target": {"api": settings.api_url, "redis": settings.redis_url, "kafka": settings.kafka_bootstrap},
            "config": {"scenario": sc.__dict__, "workload": {k: v for k, v in cfg.__dict__.items()}},
            "ceilings": ceilings, "figures": figures, "topologies": topo, "dead_letters": {"total": dlq, "by_group_and_type": {f"{g}/{t}": n for (g, t), n in by_group.items()}},
            "resources": {k: {x: y for x, y in v.items() if x != "cpu_series"} for k, v in res_summary.items()},
            "phases": phases, "scale": scale.model(measured),
            "timeseries": series | {"cpu_pct": {k: v["cpu_series"] for k, v in res_summary.items()}},
            "notes": notes}
