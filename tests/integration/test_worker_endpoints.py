"""Topology workers' own HTTP port on the real stack: /metrics after traffic, /readyz, /livez, SIGSTOP."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid

import httpx
import pytest
from confluent_kafka import Producer
from support.scrape import value
from support.wait import wait_until

from core.events import new_event, post_created
from core.settings import Settings, isolated
from ops import workers
from stores import cassandra
from stores import redis as redis_store
from stores.users import k_registered
from streams.admin import apply_all
from streams.producer import EventProducer
from topologies.metrics import read_target

NAMES = ("users", "fanout")


def _wiped(stack: Settings, keyspace: str, db: int) -> Settings:
    s = isolated(stack, keyspace, db)
    redis_store.client(s).flushdb()
    c = cassandra.cluster(s).connect()
    c.execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=120)
    c.cluster.shutdown()
    return s


def _get(url: str, timeout: float = 5.0) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=timeout)
    except httpx.HTTPError:
        return None


@pytest.fixture(scope="module")
def running(stack: Settings, tmp_path_factory: pytest.TempPathFactory):
    apply_all(stack, echo=lambda *_: None)
    s = _wiped(stack, "fs_itest_wmetrics", 9)
    tmp = tmp_path_factory.mktemp("wmetrics")
    state = tmp / "state"
    procs = {n: workers.start_worker(s, n, tmp / f"{n}.log", new_session=True, state_dir=state,
                                     topology_group_suffix=f"-m{uuid.uuid4().hex[:8]}",
                                     worker_metrics_port=0, worker_live_max_age_s=15,
                                     # new groups start at the log's end: late in the suite, earliest would
                                     # replay every earlier test's users and posts first (minutes)
                                     topology_offset_reset="latest")
             for n in NAMES}
    try:
        urls = {n: "http://" + wait_until(lambda n=n: read_target(state, "topology", n), 120)
                for n in NAMES}
        for n in NAMES:
            wait_until(lambda n=n: (r := _get(urls[n] + "/readyz")) is not None and r.status_code == 200, 180,
                       interval_s=1)
        yield s, urls, procs, tmp
    finally:
        for p in procs.values():
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGCONT)
        workers.stop_workers(list(procs.values()))


def test_metrics_after_traffic(running) -> None:
    s, urls, _procs, logs = running
    author = f"m{uuid.uuid4().hex[:10]}"
    redis_store.client(s).set(k_registered(author), "1", ex=3600)  # what the API marks on registration
    raw = Producer({"bootstrap.servers": s.kafka_bootstrap})
    last_sent = [0.0]

    def send_traffic() -> None:
        """A registration, a post and a poison record; again every 3 s until counted (a group that
        starts at ``latest`` skips what was produced before its partitions were assigned)."""
        if time.monotonic() - last_sent[0] < 3:
            return
        last_sent[0] = time.monotonic()
        with EventProducer(s) as producer:
            producer.send("UserRegistered", new_event(author, user_id=author, handle=author,
                                                      display_name=author, bio=None, avatar_url=None))
            producer.send(*post_created(author, "observed"))
        raw.produce("users.v1", key=author.encode(), value=b"\x00not avro")
        raw.flush(10)

    def scraped(name: str, metric: str, **labels: str) -> float:
        send_traffic()
        r = _get(urls[name] + "/metrics")
        return value(r.text, metric, **labels) if r is not None else 0.0

    wait_until(lambda: scraped("users", "feedstream_worker_events_processed_total", type="UserRegistered"), 90)
    wait_until(lambda: scraped("users", "feedstream_worker_events_dead_lettered_total", topology="users",
                               topic="users.v1"), 90)
    wait_until(lambda: scraped("fanout", "feedstream_worker_events_processed_total", topology="fanout",
                               type="PostCreated"), 90)
    for name in NAMES:
        text = httpx.get(urls[name] + "/metrics", timeout=5).text
        assert value(text, "feedstream_worker_batch_size_count", topology=name) > 0
        assert value(text, "feedstream_worker_processing_seconds_count", topology=name) > 0
        assert value(text, "feedstream_write_to_visible_seconds_count", topology=name) > 0
        assert "feedstream_worker_last_commit_age_seconds" in text
        assert f'feedstream_worker_live{{topology="{name}"}} 1.0' in text
    wait_until(lambda: 'feedstream_consumer_lag{partition="0",topic="posts.v1",topology="fanout"}'
               in httpx.get(urls["fanout"] + "/metrics", timeout=5).text, 30)
    # the worker logs JSON lines off a terminal: the dead letter's warning among them
    lines = [json.loads(x) for x in (logs / "users.log").read_text().splitlines()
             if x.startswith("{") and x.endswith("}")]  # not a line the worker is still writing
    assert any(x["level"] == "WARNING" and x["msg"].startswith("dead-lettered users.v1") for x in lines)


def test_a_sigstopped_worker_turns_livez_red_within_the_probe_timeout(running) -> None:
    _s, urls, procs, _logs = running
    live = urls["users"] + "/livez"
    assert httpx.get(live, timeout=5).status_code == 200
    os.killpg(procs["users"].pid, signal.SIGSTOP)
    try:
        assert _get(live, timeout=3.0) is None  # a probe with a 3 s timeout (k8s timeoutSeconds) fails
    finally:
        os.killpg(procs["users"].pid, signal.SIGCONT)
    wait_until(lambda: (r := _get(live)) is not None and r.status_code == 200, 60, interval_s=1)

