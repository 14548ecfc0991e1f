"""One chaos suite: a platform on its own ports, then per fault a load, the fault, recovery, verification.

The platform (engines, workers under their supervisors, the API) is started once by
:func:`ops.platform.up` on free loopback ports and a state dir under ``--out`` (or an already
running one is used), with the workers' Redis and Cassandra endpoints pointing at a Toxiproxy
server, so network faults sit between the workers and those engines while the API talks to the
engines directly. Kafka is proxied too: a broker advertises its listener's address in metadata, so
after bootstrapping through a proxy a client would connect to the broker directly; the suite's
broker therefore has a second listener, PROXIED (:func:`ops.local.configs.kafka_listeners`), that
advertises the proxy's port, and the workers bootstrap from it (the API and the suite's own
clients use the plain listener).

Each fault runs with its own users (id prefix), so runs share the platform and the log; each run:
register and follow (acknowledged writes too), open-loop mixed writes at ``rate``/s for
``duration`` s with a freshness probe, the fault injected at a third of the load, healed after its
hold, then the wait for consumer lag 0 and :func:`bench.chaos.verify.verify`.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException

from bench.chaos import faults as fl
from bench.chaos.load import Load, LoadStats
from bench.chaos.toxiproxy import Toxiproxy
from bench.chaos.verify import Verdict, verify
from core.settings import Settings, get_settings
from core.workload import WorkloadConfig
from ops import platform
from ops.lag import topology_lag
from ops.local import procs, stack
from ops.seed import ApiDriver

# every engine port on a free one (as tests/conftest.py does): a fixed OpenSearch 9200 or
# Prometheus 9090 would clash with the dev stack or another suite on the machine
PORT_FIELDS = ("kafka_port", "kafka_controller_port", "cassandra_port", "cassandra_storage_port",
               "redis_port", "registry_port", "registry_management_port", "api_port",
               "opensearch_port", "opensearch_transport_port", "prometheus_port")
WORKER_SERVICES = tuple(f"topology-{w}" for w in fl.WORKERS)


@dataclass
class RunResult:
    """One fault's run: the figures of the table and the series of the plot."""

    fault: str
    what: str
    acked: int
    refused: dict[int, int]
    gave_up: int
    retries: int
    retry_statuses: dict[int, int]
    verdict: dict[str, Any]
    ok: bool
    inject_at: float | None
    heal_at: float | None
    load_end: float
    recovery_s: float | None       # injection -> lag back at its pre-fault level (after the heal)
    drain_s: float | None          # end of load -> consumer lag 0
    lag: list[tuple[float, int | None]] = field(default_factory=list)
    visible: list[tuple[float, float | None]] = field(default_factory=list)


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def own_platform_env(state_dir: Path) -> dict[str, str]:
    """FEEDSTREAM_* of a platform on free loopback ports with its own state dir."""
    ports = _free_ports(len(PORT_FIELDS) + 2)
    env = {f"FEEDSTREAM_{f.upper()}": str(p) for f, p in zip(PORT_FIELDS, ports)}
    # the broker's PROXIED listener, and the Toxiproxy port it advertises (start_platform's proxy)
    env.update(FEEDSTREAM_KAFKA_PROXY_PORT=str(ports[-2]), FEEDSTREAM_KAFKA_PROXY_ADVERTISED=f"127.0.0.1:{ports[-1]}")
    env.update(FEEDSTREAM_STATE_DIR=str(state_dir), FEEDSTREAM_KAFKA_HEAP_MB="512",
               FEEDSTREAM_CASSANDRA_HEAP_MB="768", FEEDSTREAM_HOST="127.0.0.1")
    return env


def total_lag(settings: Settings) -> int | None:
    try:
        return sum(x.lag for x in topology_lag(settings, timeout_s=3))
    except (KafkaException, RuntimeError, OSError):  # Kafka down: no figure
        return None


async def wait_lag_zero(settings: Settings, timeout_s: float) -> float | None:
    """Seconds until every topology's lag reads 0 twice in a row (None after ``timeout_s``)."""
    t0, zeros = time.monotonic(), 0
    while time.monotonic() - t0 < timeout_s:
        lag = await asyncio.to_thread(total_lag, settings)
        zeros = zeros + 1 if lag == 0 else 0
        if zeros >= 2:
            return time.monotonic() - t0
        await asyncio.sleep(1.0)
    return None


async def wait_trending_running(settings: Settings, driver: Any, timeout_s: float) -> float | None:
    """Seconds until the trending job has checkpointed past a probe post (None after ``timeout_s``).

    Summed lag 0 alone passes while the job has not started: before a run's load, posts.v1 and
    engagements.v1 may hold nothing for it to lag behind. So a probe user outside the run posts
    once, and this waits until the ``trending`` group has committed posts.v1 up to its end as of
    then: the job runs and commits (on checkpoints). The probe is not one of the run's users, so the
    verification does not count it.
    """
    from core.workload import Request

    t0, probe = time.monotonic(), f"probe-trending-{uuid.uuid4().hex[:8]}"
    await driver.send(Request("POST", "/v1/users", probe, {"user_id": probe, "handle": probe.replace("-", "_"),
                                                           "display_name": "trending probe"}))
    posted = False
    ends: int | None = None
    while time.monotonic() - t0 < timeout_s:
        if not posted:
            res = await driver.send(Request("POST", "/v1/posts", probe, {"text": "checkpoint probe #chaosprobe"}))
            posted = res.status == 202
        if posted:
            lags = {x.topology: x for x in await asyncio.to_thread(topology_lag, settings, 3)}
            trending = lags.get("trending")
            if trending is not None:
                ends = trending.end if ends is None else ends
                if trending.committed >= ends > 0:
                    return time.monotonic() - t0
        await asyncio.sleep(1.0)
    return None


def recovery(lag: list[tuple[float, int | None]], inject_at: float | None, heal_at: float | None) -> float | None:
    """Injection to the first sample, after the heal and after the lag's peak that followed the
    injection, with lag back at or below its pre-fault maximum (None if it never got there)."""
    if inject_at is None or heal_at is None:
        return None
    before = [x for t, x in lag if t < inject_at and x is not None]
    level = max(before) if before else 0
    after = [(t, x) for t, x in lag if t >= inject_at and x is not None]
    peak_t = max(after, key=lambda s: s[1])[0] if after and max(x for _, x in after) > level else inject_at
    for t, x in after:
        if t >= max(heal_at, peak_t) and x <= level:
            return round(t - inject_at, 1)
    return None


@dataclass
class Suite:
    """The platform and what every run shares."""

    settings: Settings
    ctx: fl.Context
    duration_s: float
    rate: float
    users: int
    echo: Callable[[str], Any] = print
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:4])
    wait_trending: bool = True  # each run starts once the trending job checkpoints (see wait_trending_running)

    async def run_one(self, n: int, fault: fl.Fault) -> RunResult:
        cfg = WorkloadConfig(users=self.users, seed=n, prefix=f"x{self.tag}{n:02d}-", mean_follows=6.0,
                             celebrities=2)
        driver = ApiDriver(self.settings, max_connections=64, timeout_s=15.0)
        try:
            load = Load(driver, cfg)
            await load.setup()
            await wait_lag_zero(self.settings, 300)  # the run starts from a settled platform
            if self.wait_trending and await wait_trending_running(self.settings, driver, 600) is None:
                self.echo(f"[{fault.name}] the trending job did not commit within 600 s; running anyway")
            t0 = time.monotonic()
            lag: list[tuple[float, int | None]] = []
            marks: dict[str, float] = {}
            done = asyncio.Event()

            async def sample() -> None:
                while not done.is_set():
                    lag.append((time.monotonic() - t0, await asyncio.to_thread(total_lag, self.settings)))
                    await asyncio.sleep(1.0)

            async def inject() -> None:
                await asyncio.sleep(self.duration_s / 3)
                marks["inject"] = time.monotonic() - t0
                self.echo(f"[{fault.name}] injecting at {marks['inject']:.0f}s: {fault.what}")
                await asyncio.to_thread(fault.inject, self.ctx)
                await asyncio.sleep(fault.hold_s)
                await asyncio.to_thread(fault.heal, self.ctx)
                marks["heal"] = time.monotonic() - t0
                self.echo(f"[{fault.name}] healed at {marks['heal']:.0f}s")

            def tick(now: float) -> None:
                if int(now) % 10 == 0 and int(now) != marks.get("tick"):
                    marks["tick"] = int(now)
                    self.echo(f"[{fault.name}] {now:.0f}/{self.duration_s:.0f}s load, {len(load.stats.acks)} acked, "
                              f"{load.stats.retries} retries, lag {lag[-1][1] if lag else '?'}")

            sampler = asyncio.create_task(sample())
            injector = asyncio.create_task(inject())
            await asyncio.gather(load.run(self.rate, self.duration_s, tick), load.probe(self.duration_s * 0.9),
                                 injector)
            load_end = time.monotonic() - t0
            retries, retry_statuses = load.stats.retries, dict(load.stats.retry_statuses)
            self.echo(f"[{fault.name}] load done at {load_end:.0f}s; waiting for consumer lag 0")
            drain = await wait_lag_zero(self.settings, 600)
            done.set()
            await sampler
            verdict = await self.settle(driver, load.users, load.stats)
            st = load.stats
            return RunResult(fault.name, fault.what, len(st.acks), st.refused, st.gave_up, retries, retry_statuses,
                             {**{k: x for k, x in asdict(verdict).items() if not k.startswith("_")},
                              "view_mismatches": verdict.view_mismatches}, verdict.ok,
                             marks.get("inject"), marks.get("heal"), round(load_end, 1),
                             recovery(lag, marks.get("inject"), marks.get("heal")),
                             None if drain is None else round(drain, 1), lag,
                             [(round(t - t0, 2), x) for t, x in st.visible])
        finally:
            await driver.aclose()

    async def settle(self, driver: ApiDriver, users: list[str], stats: LoadStats) -> Verdict:
        """Verify; if a view is off, once more 15 s later (caches expire), and report that."""
        v = await verify(self.settings, driver, users, stats)
        if not v.ok:
            self.echo(f"  first verification: {v.view_mismatches} view mismatches; again in 15 s")
            await asyncio.sleep(15)
            v = await verify(self.settings, driver, users, stats)
        return v


def start_platform(settings: Settings, proxy: Toxiproxy | None, echo: Callable[[str], Any]
                   ) -> Callable[[], None]:
    """Start (or complete) the platform; the restart function the faults use (``up --no-seed``)."""
    env: dict[str, str] = {}
    if proxy is not None:
        r_port = proxy.proxy("redis", f"127.0.0.1:{settings.redis_port}")
        c_port = proxy.proxy("cassandra", f"127.0.0.1:{settings.cassandra_port}")
        db = settings.redis_url.rsplit("/", 1)[1]
        env = {"FEEDSTREAM_REDIS_URL": f"redis://127.0.0.1:{r_port}/{db}",
               "FEEDSTREAM_CASSANDRA_HOSTS": "127.0.0.1", "FEEDSTREAM_CASSANDRA_PORT": str(c_port)}
        kafka = ""
        if settings.kafka_proxy_port and settings.kafka_proxy_advertised:
            k_port = int(settings.kafka_proxy_advertised.rsplit(":", 1)[1])
            proxy.proxy("kafka", f"127.0.0.1:{settings.kafka_proxy_port}", port=k_port)
            env["FEEDSTREAM_KAFKA_BOOTSTRAP"] = settings.kafka_proxy_advertised
            kafka = f", Kafka via :{k_port} (broker listener PROXIED :{settings.kafka_proxy_port})"
        echo(f"toxiproxy on :{proxy.port}: workers reach Redis via :{r_port}, Cassandra via :{c_port}{kafka}")

    def service_env(name: str) -> dict[str, str] | None:
        return env if name in WORKER_SERVICES else None

    def restart() -> None:
        platform.up(settings, seed=False, echo=lambda m: echo(f"  up: {m}"), service_env=service_env)

    restart()
    return restart


def suite(names: list[str], *, duration_s: float, rate: float, users: int, out: Path, own: bool = True,
          stall_s: float = 20.0, net_s: float = 15.0, echo: Callable[[str], Any] = print,
          on_result: Callable[[list[RunResult]], Any] | None = None,
          wait_trending: bool = True) -> list[RunResult]:
    """Run every fault of ``names`` once; stop the platform at the end when it is our own.

    A run that fails outright (not a wrong view: an error of the suite or a platform that does not
    come back) is reported and the next fault runs; ``on_result`` sees the results after each run.
    """
    catalog = fl.catalog(stall_s=stall_s, net_s=net_s)
    unknown = sorted(set(names) - set(catalog))
    if unknown:
        raise ValueError(f"unknown fault(s) {unknown}; choose from {sorted(catalog)}")
    saved = dict(os.environ)
    if own:
        os.environ.update(own_platform_env(out / "state"))
    get_settings.cache_clear()
    settings = get_settings()
    proxy = Toxiproxy(settings, out / "toxiproxy.log") if own else None
    results: list[RunResult] = []
    failed: list[str] = []
    before = {svc.name for svc in platform.SERVICES if procs.read_pidfile(stack.pid_path(settings, svc.name))}
    try:
        restart = start_platform(settings, proxy, echo)
        ctx = fl.Context(settings, restart, proxy, echo)
        s = Suite(settings, ctx, duration_s, rate, users, echo, wait_trending=wait_trending)
        for n, name in enumerate(names):
            if catalog[name].name.startswith("net-") and proxy is None:
                echo(f"[{name}] skipped: network faults need the suite's own platform (Toxiproxy)")
                continue
            echo(f"[{name}] run {n + 1}/{len(names)}: {users} users, {rate:g} writes/s for {duration_s:g}s")
            try:
                if failed:  # bring back whatever a failed run left down (e.g. an engine that was slow to start)
                    restart()
                res = asyncio.run(s.run_one(n, catalog[name]))
            except Exception as exc:  # noqa: BLE001 - report it and go on with the next fault
                echo(f"[{name}] FAILED: {type(exc).__name__}: {exc}")
                failed.append(name)
                continue
            v = res.verdict
            echo(f"[{name}] {'OK' if res.ok else 'WRONG'}: {res.acked} acked, {v['missing_from_log']} missing, "
                 f"{v['duplicates']} duplicates, {v['unacked_in_log']} unacked in log, "
                 f"{res.verdict['view_mismatches']} view mismatches; recovery {res.recovery_s}s, drain {res.drain_s}s")
            for e in v["examples"][:5]:
                echo(f"    {e}")
            results.append(res)
            if on_result is not None:
                on_result(results)
        if failed:
            echo(f"runs that failed outright: {failed}")
    finally:
        if not own:  # stop only the services this suite started
            for svc in reversed(platform.SERVICES):
                if svc.name not in before:
                    procs.stop(stack.pid_path(settings, svc.name))
        else:
            platform.down(settings, echo=lambda m: None)
            if proxy is not None:
                proxy.stop()
            os.environ.clear()
            os.environ.update(saved)
            get_settings.cache_clear()
    return results
