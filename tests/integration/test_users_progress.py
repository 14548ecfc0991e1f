"""The users-progress check on real workers (issues #13/#14 gaps): "never registered" is proven by
the users topology's progress, not assumed after a wall-clock grace.

The graph and engagement workers run with a 1 s grace while the users worker is not running; a
follow of a user whose UserRegistered is on users.v1 (produced straight to Kafka: no API mark) waits
far past the grace and is applied once the users worker starts, never dead-lettered; a like by a
user who never registered is dead-lettered ``UnknownUser`` once the users topology passed the
snapshot; so is a comment by one, by the users topology's comment threads too (never stored).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from support.events import edge
from support.wait import wait_until

from core.events import new_event
from core.ids import new_id, new_post_id
from core.settings import Settings, isolated
from ops.workers import start_worker, stop_workers
from stores import cassandra, graph, progress
from stores import redis as redis_store
from stores.comments import CommentStore
from stores.users import k_registered
from streams.admin import apply_all
from streams.producer import EventProducer
from streams.serde import Serde

pytestmark = pytest.mark.timeout(600)
GRACE_S = 1.0


def uid(tag: str) -> str:
    return f"{tag}{uuid.uuid4().hex[:10]}"


def dlq_tail(stack: Settings) -> Consumer:
    c = Consumer({"bootstrap.servers": stack.kafka_bootstrap, "group.id": uid("dl"), "enable.auto.commit": False})
    meta = c.list_topics("dead-letters.v1", timeout=10).topics["dead-letters.v1"]
    c.assign([TopicPartition("dead-letters.v1", p, c.get_watermark_offsets(
        TopicPartition("dead-letters.v1", p), timeout=10)[1]) for p in meta.partitions])
    return c


def letters(stack: Settings, c: Consumer, seconds: float) -> dict[str, dict[str, Any]]:
    """Dead letters read within ``seconds``, by their source event id."""
    serde, out = Serde(stack.registry_url), {}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for msg in c.consume(100, 0.5):
            d = serde.decode(msg.value())
            out[serde.decode(d.value["value"]).value["event_id"]] = d.value
    return out


@pytest.fixture(scope="module")
def env(stack: Settings, tmp_path_factory) -> Iterator[dict[str, Any]]:
    apply_all(stack, echo=lambda *_: None)
    s = isolated(stack, "fs_itest_usersprog", 10)
    redis_store.client(s).flushdb()
    cassandra.cluster(s).connect().execute("DROP KEYSPACE IF EXISTS fs_itest_usersprog", timeout=120)
    logs = tmp_path_factory.mktemp("usersprog")
    extra = {"topology_group_suffix": f"-up-{uuid.uuid4().hex[:8]}", "graph_user_grace_s": GRACE_S}
    procs = [start_worker(s, name, logs / f"{name}.log", topology_offset_reset="latest", **extra)
             for name in ("graph", "engagement")]
    out: dict[str, Any] = {"s": s, "logs": logs, "extra": extra, "procs": procs, "r": redis_store.client(s)}
    try:
        with EventProducer(stack) as producer:
            out["producer"] = producer
            a, b = uid("probe"), uid("probe")
            for u in (a, b):  # the API's marks: registered without the users topology
                out["r"].set(k_registered(u), "1", ex=3600)
            sent = [0.0]

            def joined() -> bool:
                assert all(p.poll() is None for p in procs), f"a worker exited; see {logs}"
                if time.monotonic() - sent[0] > 3:
                    producer.send(*edge("Followed", a, b))
                    sent[0] = time.monotonic()
                return all(out["r"].exists(progress.key(t)) for t in ("graph", "engagement"))

            wait_until(joined, timeout_s=180)
            yield out
    finally:
        stop_workers(procs)


def test_a_follow_waits_for_a_stopped_users_topology_then_applies(env, stack: Settings) -> None:
    s, r, producer = env["s"], env["r"], env["producer"]
    fan, new = uid("fan"), uid("new")
    r.set(k_registered(fan), "1", ex=3600)
    dlq = dlq_tail(stack)
    producer.send("UserRegistered", new_event(new, user_id=new, handle=new, display_name="N", bio=None,
                                              avatar_url=None))
    follow = edge("Followed", fan, new)
    producer.send(*follow)
    early = letters(stack, dlq, 5 * GRACE_S)  # far past the grace, the users topology still down
    assert follow[1]["event_id"] not in early
    assert not graph.is_following(r, fan, new)  # waiting: latency, not loss
    # the users topology starts (its new group reads users.v1 from the start) and passes the snapshot
    env["procs"].append(start_worker(s, "users", env["logs"] / "users.log", topology_offset_reset="earliest",
                                     **env["extra"]))
    wait_until(lambda: graph.is_following(r, fan, new), timeout_s=120)
    assert follow[1]["event_id"] not in letters(stack, dlq, 2)
    dlq.close()


def test_likes_and_follows_by_users_who_never_registered_are_dead_lettered(env, stack: Settings) -> None:
    r, producer = env["r"], env["producer"]
    assert any(p.args[-1] == "users" for p in env["procs"]), "runs after the users topology started"
    author, ghost = uid("author"), uid("ghost")
    r.set(k_registered(author), "1", ex=3600)
    dlq = dlq_tail(stack)
    like = new_event(ghost, post_id=123456789, post_author_id=author, user_id=ghost)
    producer.send("Liked", like)
    follow = edge("Followed", author, ghost)
    producer.send(*follow)
    got: dict[str, dict[str, Any]] = {}

    def both() -> bool:
        got.update(letters(stack, dlq, 1))
        return {like["event_id"], follow[1]["event_id"]} <= set(got)

    wait_until(both, timeout_s=120)
    dlq.close()
    assert got[like["event_id"]]["error_type"] == "UnknownUser"
    assert f"Liked: user {ghost} never registered" in got[like["event_id"]]["error"]
    assert got[follow[1]["event_id"]]["error_type"] == "UnknownUser"
    assert not graph.is_following(r, author, ghost)


def letters_by_group(stack: Settings, c: Consumer, seconds: float) -> dict[tuple[str, str], dict[str, Any]]:
    """Dead letters read within ``seconds``, by (source event id, the refusing group)."""
    serde, out = Serde(stack.registry_url), {}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for msg in c.consume(100, 0.5):
            d = serde.decode(msg.value())
            out[(serde.decode(d.value["value"]).value["event_id"], d.value["consumer_group"])] = d.value
    return out


def test_comment_threads_refuse_a_comment_by_a_user_who_never_registered(env, stack: Settings) -> None:
    """The users topology's comment threads agree with the engagement worker: a comment by a
    never-registered user is dead-lettered ``UnknownUser`` with its source offset and never stored;
    a comment whose author's UserRegistered comes later in the log, but earlier in event time,
    is stored (the check is the users topology's progress, not a lookup at apply time)."""
    s, r, producer = env["s"], env["r"], env["producer"]
    assert any(p.args[-1] == "users" for p in env["procs"]), "runs after the users topology started"
    author, ghost, late = uid("author"), uid("ghost"), uid("late")
    r.set(k_registered(author), "1", ex=3600)
    dlq = dlq_tail(stack)
    post = new_post_id()

    def comment(user: str) -> dict[str, Any]:
        return new_event(user, comment_id=new_id(), post_id=post, post_author_id=author, user_id=user,
                         text=f"hi from {user}", parent_comment_id=None)

    bad, good = comment(ghost), comment(late)
    sent = producer.send("CommentAdded", bad)
    producer.send("CommentAdded", good)
    producer.send("UserRegistered", {**new_event(late, user_id=late, handle=late, display_name="L", bio=None,
                                                  avatar_url=None), "occurred_at": good["occurred_at"] - 1000})
    users_group = f"feedstream-users{env['extra']['topology_group_suffix']}"
    got: dict[tuple[str, str], dict[str, Any]] = {}

    def refused() -> bool:
        got.update(letters_by_group(stack, dlq, 1))
        return (bad["event_id"], users_group) in got

    wait_until(refused, timeout_s=120)
    letter = got[(bad["event_id"], users_group)]
    assert letter["error_type"] == "UnknownUser"
    assert f"CommentAdded: user {ghost} never registered" in letter["error"]
    assert (letter["source_topic"], letter["source_partition"], letter["source_offset"]) == (sent.topic, sent.partition, sent.offset)
    comments = CommentStore(cassandra.session(s))
    wait_until(lambda: comments.thread_of(good["comment_id"]) is not None, timeout_s=120)
    assert comments.thread_of(bad["comment_id"]) is None
    assert [c["user_id"] for c in comments.page(post, 0, 0, 10)] == [late]
    got.update(letters_by_group(stack, dlq, 1))
    dlq.close()
    assert (good["event_id"], users_group) not in got
