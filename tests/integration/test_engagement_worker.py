"""The engagement worker as a real process on the real engines: kill -9 + restart, notifications, Avro out."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from core.clock import now_ms
from core.events import new_event, post_created
from core.ids import new_id
from core.rows import Counts
from core.settings import REPO_ROOT, Settings
from ops import workers
from stores import cassandra
from stores import redis as redis_store
from stores.counters import CounterStore, hot_counts
from stores.notifications import NotificationStore, channel
from streams.admin import apply_topics
from streams.producer import EventProducer
from topologies import health
from topologies.engagement.logic import recount

# A fresh group reads the topics from the start (default lz4 batches included: aiokafka uses
# cramjam). On a reused dev stack the topics hold other runs' history (10^5 notifications), so the
# module's worker group starts at the end there; the tests produce lz4 (the default) either way.
RESET = "latest" if os.environ.get("FEEDSTREAM_TEST_REUSE_STACK") else "earliest"
# The engagement app (group argv[1]) with a recording handler that raises on the record whose user is argv[3].
CRASHING = ("import sys, redis; from core.settings import get_settings; "
            "from topologies.engagement.app import create_app; "
            "from topologies.faust_runtime import run_worker; "
            "s = get_settings(); r = redis.Redis.from_url(s.redis_url); post = int(sys.argv[2])\n"
            "async def handler(batch):\n"
            "    mine = [e.value['user_id'] for e in batch if e.value['post_id'] == post]\n"
            "    if mine: r.rpush(f'crashtest:{post}', *[f'{sys.argv[3]}:{u}' for u in mine])\n"
            "    if 'boom' in mine and sys.argv[3] == 'first': raise RuntimeError('boom')\n"
            "run_worker(create_app(s, app_id=sys.argv[1], process=handler), "
            "loglevel='warning')")


def start_worker(settings: Settings, suffix: str, log_path: str) -> subprocess.Popen:
    """Start ``feedstream topology run engagement`` (group ``feedstream-engagement<suffix>``) in its own process group."""
    return workers.start_worker(settings, "engagement", Path(log_path), new_session=True,
                                topology_group_suffix=suffix, topology_offset_reset=RESET,
                                engagement_user_check=False)  # synthetic users; no users topology here


def start_crashing(app_id: str, log_path: str, *args: str) -> subprocess.Popen:
    """Start the :data:`CRASHING` worker in its own process group."""
    with open(log_path, "ab") as log:
        return subprocess.Popen([sys.executable, "-c", CRASHING, app_id, *args], cwd=REPO_ROOT,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def wait_for(pred: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture(scope="module")
def worker_env(stack: Settings, tmp_path_factory) -> Iterator[dict[str, Any]]:
    apply_topics(stack)
    suffix = f"-it-{new_id()}"
    log = str(tmp_path_factory.mktemp("eng") / "worker.log")
    env: dict[str, Any] = {"suffix": suffix, "log": log, "procs": [start_worker(stack, suffix, log)]}
    try:
        wait_ready(stack)
        yield env
    finally:
        for p in env["procs"]:
            stop(p, signal.SIGKILL)


def wait_ready(settings: Settings) -> None:
    """Produce probe likes until the freshly started worker counts one (its group is assigned)."""
    post = make_post(settings, "probe-author")
    store = CounterStore(cassandra.session(settings))
    with EventProducer(settings) as producer:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            producer.send("Liked", new_event("probe", post_id=post, post_author_id="probe-author",
                                             user_id=f"probe-{new_id()}"))
            if store.totals(post).likes:
                return
            time.sleep(2)
    raise AssertionError("engagement worker never became ready")


def make_post(settings: Settings, author: str) -> int:
    pid = new_id()
    cassandra.session(settings).execute(
        "INSERT INTO posts (post_id, author_id, text, deleted) VALUES (%s, %s, 'x', false)", (pid, author))
    return pid


def engagement_log(posts: list[tuple[int, str]], n: int, seed: int) -> list[tuple[str, dict]]:
    rng = random.Random(seed)
    log = []
    for _ in range(n):
        post, author = rng.choice(posts)
        user = f"u{rng.randrange(20)}"
        name = rng.choice(["Liked", "Liked", "Unliked", "ReactionAdded", "CommentAdded", "CommentDeleted"])
        extra: dict[str, Any] = {"post_id": post, "post_author_id": author, "user_id": user}
        if name == "ReactionAdded":
            extra["kind"] = rng.choice(["LOVE", "HAHA"])
        if name.startswith("Comment"):
            extra["comment_id"] = post * 0 + rng.randrange(1, 30)
        if name == "CommentAdded":
            extra.update(text="c", parent_comment_id=None)
        e = new_event(user, **extra)
        e["occurred_at"] = 1_760_000_000_000 + rng.randrange(10) * 1000
        log.append((name, e))
    return log


def test_a_running_worker_keeps_its_heartbeat_fresh_for_the_probe(stack: Settings, worker_env) -> None:
    """The liveness probe's check passes against a real worker (#14 item 17)."""
    path = health.heartbeat_path(stack.state_dir, "engagement")
    wait_for(lambda: health.check(path, max_age_s=3 * health.HEARTBEAT_S)[0], 60, "a fresh heartbeat")
    probe = subprocess.run([sys.executable, "-m", "topologies.health", "engagement",
                            "--state-dir", str(stack.state_dir)], cwd=REPO_ROOT,
                           capture_output=True, text=True, timeout=30)
    assert probe.returncode == 0, probe.stderr


def test_kill_9_mid_stream_and_restart_counts_equal_recount(stack: Settings, worker_env) -> None:
    posts = [(make_post(stack, f"author{i}"), f"author{i}") for i in range(4)]
    log = engagement_log(posts, 1500, seed=3)
    delivered = log + random.Random(4).sample(log, 300)  # producer-side duplicates too
    proc = worker_env["procs"][-1]

    def produce() -> None:  # a stream, not one burst: the kill lands while it is still arriving
        with EventProducer(stack) as producer:
            for i in range(0, len(delivered), 50):
                producer.send_many(delivered[i:i + 50])
                time.sleep(0.1)

    producing = threading.Thread(target=produce, name="engagement-stream")
    producing.start()
    r = redis_store.client(stack)
    store = CounterStore(cassandra.session(stack))

    def progressed() -> bool:
        revs = [store.session.execute(store.q_statics, (p,)).one() for p, _ in posts]
        return sum((row.rev or 0) if row else 0 for row in revs) >= 150

    try:
        wait_for(progressed, 120, "the worker to apply some engagements")
        stop(proc, signal.SIGKILL)  # kill -9 mid-stream
        mid_stream = producing.is_alive()
    finally:
        producing.join()
    assert proc.returncode == -signal.SIGKILL
    expected = {p: recount([(n, e) for n, e in log if e["post_id"] == p]) for p, _ in posts}
    partial = {p: store.totals(p) for p, _ in posts}
    assert mid_stream and partial != expected, "the worker finished before the kill; the test proves nothing"

    proc2 = start_worker(stack, worker_env["suffix"], worker_env["log"])
    worker_env["procs"].append(proc2)
    wait_for(lambda: {p: store.totals(p) for p, _ in posts} == expected, 180,
             "counters to converge to the recount after restart")
    wait_for(lambda: hot_counts(r, [p for p, _ in posts]) == expected, 30, "Redis to match")
    time.sleep(2)  # nothing may keep moving (no double counting from the replayed tail)
    assert {p: store.totals(p) for p, _ in posts} == expected


def test_notification_feed_unread_count_mark_read_and_push(stack: Settings, worker_env) -> None:
    author, fan = f"na-{new_id()}", f"nf-{new_id()}"
    post = make_post(stack, author)
    r = redis_store.client(stack)
    sub = r.pubsub()
    sub.subscribe(channel(author))
    with EventProducer(stack) as producer:
        producer.send("Liked", new_event(fan, post_id=post, post_author_id=author, user_id=fan))
        producer.send("Followed", new_event(fan, follower_id=fan, followee_id=author))
        producer.send("FriendRequestSent", new_event(fan, from_id=fan, to_id=author))
    if not any(p.poll() is None for p in worker_env["procs"]):
        worker_env["procs"].append(start_worker(stack, worker_env["suffix"], worker_env["log"]))
    notes = NotificationStore(cassandra.session(stack))
    feed = wait_for(lambda: len(notes.list(author)) == 3 and notes.list(author), 120, "3 notifications")
    assert sorted(n["kind"] for n in feed) == ["FOLLOW", "FRIEND_REQUEST", "LIKE"]
    assert all(n["actor_id"] == fan and not n["read"] for n in feed)
    assert notes.unread_count(author) == 3
    assert notes.mark_read(author) >= max(n["created_at"] for n in feed)
    assert notes.unread_count(author) == 0 and all(n["read"] for n in notes.list(author))
    pushed = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(pushed) < 3:
        msg = sub.get_message(timeout=1)
        if msg and msg["type"] == "message":
            pushed.append(msg["data"])
    assert len(pushed) == 3 and all(b'"type":"notification"' in m for m in pushed)


def test_engagement_counts_decode_with_stock_avro_deserializer(stack: Settings, worker_env) -> None:
    author = f"ca-{new_id()}"
    post = make_post(stack, author)
    with EventProducer(stack) as producer:
        producer.send("Liked", new_event("x", post_id=post, post_author_id=author, user_id="x"))
        producer.send("Liked", new_event("y", post_id=post, post_author_id=author, user_id="y"))
    if not any(p.poll() is None for p in worker_env["procs"]):
        worker_env["procs"].append(start_worker(stack, worker_env["suffix"], worker_env["log"]))
    deser = AvroDeserializer(SchemaRegistryClient({"url": stack.registry_url}))
    consumer = Consumer({"bootstrap.servers": stack.kafka_bootstrap, "group.id": f"it-{new_id()}",
                         "auto.offset.reset": "earliest"})
    consumer.subscribe(["engagement-counts.v1"])
    ctx = SerializationContext("engagement-counts.v1", MessageField.VALUE)
    found: list[dict] = []
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and not any(v["window_start"] is None and v["likes"] == 2
                                                     for v in found):
            msg = consumer.poll(1.0)
            if msg is None or msg.error() or msg.key() != str(post).encode():
                continue
            found.append(deser(msg.value(), ctx))
    finally:
        consumer.close()
    totals = [v for v in found if v["window_start"] is None]
    windows = [v for v in found if v["window_start"] is not None]
    assert totals and totals[-1]["likes"] == 2 and totals[-1]["post_id"] == post
    assert windows and all(v["window_end"] - v["window_start"] == __import__("datetime").timedelta(minutes=1)
                           for v in windows)
    assert now_ms() > 0


def test_like_and_comment_before_the_post_are_counted_once_the_post_is_consumed(
        stack: Settings, worker_env) -> None:
    """Issue #13 defect 1 through the real worker: no fan-out runs (the ``posts`` row never
    appears), the engagements are parked (their offsets committed), and the PostCreated on
    posts.v1 makes them count, once."""
    author = f"late-{new_id()}"
    name, created = post_created(author)
    post = created["post_id"]
    like = new_event("fan", post_id=post, post_author_id=author, user_id="fan")
    comment = new_event("fan2", post_id=post, post_author_id=author, user_id="fan2", comment_id=7,
                        text="c", parent_comment_id=None)
    if not any(p.poll() is None for p in worker_env["procs"]):
        worker_env["procs"].append(start_worker(stack, worker_env["suffix"], worker_env["log"]))
    store = CounterStore(cassandra.session(stack))
    with EventProducer(stack) as producer:
        producer.send_many([("Liked", like), ("CommentAdded", comment), ("Liked", like)])
        wait_for(lambda: len(store.parked(post)) == 2, 120, "the engagements to be parked")
        assert store.totals(post).likes == 0 and store.rejected(post) == []
        producer.send(name, created)
    expected = recount([("Liked", like), ("CommentAdded", comment)])
    wait_for(lambda: store.totals(post) == expected and not store.parked(post), 120,
             "the parked engagements to count once the post is known")
    r = redis_store.client(stack)
    wait_for(lambda: hot_counts(r, [post])[post] == expected, 30, "Redis to match")
    with EventProducer(stack) as producer:  # a late duplicate is applied directly, not again
        producer.send("Liked", like)
        producer.send("Liked", new_event("fan3", post_id=post, post_author_id=author, user_id="fan3"))
    wait_for(lambda: store.totals(post).likes == 2, 120, "the next like")
    assert store.totals(post) == Counts(likes=2, comments=1) and not store.parked(post)


def test_handler_exception_crashes_and_the_failed_record_is_processed_again(stack: Settings,
                                                                            tmp_path) -> None:
    """Handler raises on record N: the worker exits, N's offset is not committed, a restart re-reads N."""
    post, app_id = new_id(), f"engagement-crash-{new_id()}"
    log = str(tmp_path / "crash.log")
    r = redis_store.client(stack)
    users = ["a", "b", "boom", "c"]
    with EventProducer(stack) as producer:  # default config: lz4
        for u in users:
            producer.send("Liked", new_event(u, post_id=post, post_author_id="x", user_id=u))
    first = start_crashing(app_id, log, str(post), "first")
    try:
        first.wait(180)
    finally:
        stop(first, signal.SIGKILL)
    assert first.returncode not in (None, -signal.SIGKILL), "the worker did not exit on the crash"
    seen_first = [x.decode() for x in r.lrange(f"crashtest:{post}", 0, -1)]
    assert "first:boom" in seen_first
    second = start_crashing(app_id, log, str(post), "second")
    try:
        wait_for(lambda: b"second:c" in r.lrange(f"crashtest:{post}", 0, -1), 180,
                 "the restarted worker to reach the last record")
    finally:
        stop(second)
    seen_second = [x.decode().split(":", 1)[1] for x in r.lrange(f"crashtest:{post}", 0, -1)
                   if x.startswith(b"second:")]
    assert "boom" in seen_second  # the failed record was redelivered, not committed
    assert seen_second == users[users.index(seen_second[0]):]  # in order, from an earlier commit


@pytest.mark.timeout(600)
def test_engagement_counts_read_by_flink_sql_avro_confluent_table(stack: Settings, worker_env) -> None:
    """A Flink SQL table with 'format' = 'avro-confluent' on the registry reads the derived topic."""
    from topologies.flink import table_env

    author = f"fa-{new_id()}"
    post = make_post(stack, author)
    with EventProducer(stack) as producer:
        for u in ("x", "y", "z"):
            producer.send("Liked", new_event(u, post_id=post, post_author_id=author, user_id=u))
        producer.send("ReactionAdded", new_event("x", post_id=post, post_author_id=author, user_id="x",
                                                 kind="LOVE"))
    if not any(p.poll() is None for p in worker_env["procs"]):
        worker_env["procs"].append(start_worker(stack, worker_env["suffix"], worker_env["log"]))
    r = redis_store.client(stack)
    wait_for(lambda: hot_counts(r, [post])[post].likes == 3
             and hot_counts(r, [post])[post].reactions.get("LOVE") == 1, 180, "the counts")
    t_env = table_env(stack, streaming=True)
    t_env.execute_sql(f"""
        CREATE TABLE engagement_counts (
          event_id STRING NOT NULL, occurred_at TIMESTAMP(3) NOT NULL, actor_id STRING NOT NULL,
          schema_version INT NOT NULL, post_id BIGINT NOT NULL,
          window_start TIMESTAMP(3), window_end TIMESTAMP(3),
          likes BIGINT NOT NULL, comments BIGINT NOT NULL, shares BIGINT NOT NULL,
          reactions MAP<STRING NOT NULL, BIGINT NOT NULL> NOT NULL
        ) WITH (
          'connector' = 'kafka', 'topic' = 'engagement-counts.v1',
          'properties.bootstrap.servers' = '{stack.kafka_bootstrap}',
          'properties.group.id' = 'flink-it-{new_id()}', 'scan.startup.mode' = 'earliest-offset',
          'scan.bounded.mode' = 'latest-offset',
          'format' = 'avro-confluent', 'avro-confluent.url' = '{stack.registry_url}')""")
    result = t_env.execute_sql(
        "SELECT post_id, window_start, window_end, likes, reactions, actor_id FROM engagement_counts "
        f"WHERE post_id = {post}")
    with result.collect() as it:
        rows = [tuple(row) for row in it]
    totals = [row for row in rows if row[1] is None]
    windows = [row for row in rows if row[1] is not None]
    assert totals and totals[-1][3] == 3 and dict(totals[-1][4]) == {"LOVE": 1}
    assert all(row[0] == post and row[5] == "engagement" for row in rows)
    assert windows and all((w[2] - w[1]).total_seconds() == 60 for w in windows)
    latest = {w[1]: w[3] for w in windows}  # each window record is absolute: the last one counts
    assert sum(latest.values()) == 3  # per-minute net likes add up to the total
