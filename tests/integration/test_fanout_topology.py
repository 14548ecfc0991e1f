"""Graph and fan-out workers on the real engines: one test per timeline semantic.

Workers run as ``feedstream topology run graph|fanout`` subprocesses on their own (wiped) keyspace
and Redis database, under a fresh consumer group reading from offset 0, with a small cap (10),
celebrity threshold (5 followers) and back-fill (3). The last test replays the whole log into
another wiped keyspace and Redis database and compares every reader this module created.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
import redis as _redis
from cassandra.cluster import Session
from confluent_kafka import Consumer, TopicPartition
from support.api import api_settings
from support.events import edge, post_deleted, post_edited
from support.wait import wait_until

from core.events import new_event, post_created
from core.ids import new_post_id
from core.settings import Settings, isolated, with_overrides
from models.ranking import EngagementRecencyRanker
from ops.workers import workers
from serving.feed.engines import ReadEngines
from serving.feed.pipeline import read_feed
from stores import cassandra, graph
from stores import posts as post_store
from stores import redis as redis_store
from stores import timelines as tls
from streams.admin import apply_all
from streams.producer import DeliveryReport, EventProducer
from streams.serde import Serde
from topologies.replay import end_offsets, replay_in_order, reset_group_offsets

KNOBS = dict(timeline_cap=10, celebrity_threshold=5, backfill_limit=3, inactive_days=30)


@dataclass
class Env:
    r: _redis.Redis
    s: Session
    producer: EventProducer
    knobs: Settings
    reads: ReadEngines

    def send(self, event: tuple[str, dict[str, Any]]) -> dict[str, Any]:
        self.producer.send(*event)
        return event[1]

    def send_report(self, event: tuple[str, dict[str, Any]]) -> DeliveryReport:
        return self.producer.send(*event)

    def follow(self, follower: str, followee: str) -> None:
        self.send(edge("Followed", follower, followee))
        wait_until(lambda: graph.is_following(self.r, follower, followee))

    def post(self, author: str, **kw: Any) -> int:
        pid = self.send(post_created(author, **kw))["post_id"]
        wait_until(lambda: any(p == pid for p, _ in post_store.author_posts(self.s, author, None, 50)))
        return pid

    def tl(self, reader: str) -> list[int]:
        return [int(m) for m in self.r.zrevrange(tls.k_timeline(reader), 0, -1)]

    def home(self, reader: str, limit: int = 20) -> list[dict[str, Any]]:
        """The first page of ``reader``'s home feed through the read API's path (chronological)."""
        return read_feed(self.reads, reader, "chronological", limit, None)["items"]


USERS: list[str] = []  # every user id this module created (compared by the replay test)
SUFFIX = f"-itest-{uuid.uuid4().hex[:8]}"
REGISTER: list[EventProducer] = []  # set by the fixture: uid() registers the user on users.v1


def uid(tag: str, *, register: bool = True) -> str:
    """A fresh user id, registered (graph events naming unregistered users are dead-lettered)."""
    u = f"{tag}-{uuid.uuid4().hex[:10]}"
    USERS.append(u)
    if register and REGISTER:
        REGISTER[0].send("UserRegistered", new_event(u, user_id=u, handle=u, display_name=u, bio=None,
                                                     avatar_url=None))
    return u


def wiped(stack, keyspace: str, db: int):
    """Isolated settings whose keyspace is dropped and Redis database flushed."""
    s = isolated(stack, keyspace, db)
    redis_store.client(s).flushdb()
    c = cassandra.cluster(s).connect()
    c.execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=120)
    c.cluster.shutdown()
    return s


@pytest.fixture(scope="module")
def env(stack, tmp_path_factory):
    apply_all(stack, echo=lambda *_: None)
    s = wiped(stack, "fs_itest_fanout", 7)
    r = redis_store.client(s)
    sess = cassandra.session(s)
    # the workers read from offset 0 under a fresh group; producers use lz4 (aiokafka has cramjam)
    with EventProducer(stack) as producer, \
            workers(s, ("graph", "fanout", "users"), log_dir=tmp_path_factory.mktemp("workers"),
                    topology_group_suffix=SUFFIX, **KNOBS) as procs:
        REGISTER.append(producer)
        reads = ReadEngines(api_settings(with_overrides(s, **KNOBS)), EngagementRecencyRanker())
        e = Env(r, sess, producer, Settings(**KNOBS), reads)
        probe_a, probe_f = uid("probe"), uid("probe")  # first event waits for workers to join
        sent = [0.0]

        def joined() -> bool:  # resend the probe until the workers (catching up from offset 0) see it
            assert all(p.poll() is None for p in procs), "a worker exited; see its log"
            if time.monotonic() - sent[0] > 3:
                e.send(edge("Followed", probe_f, probe_a))
                sent[0] = time.monotonic()
            return graph.is_following(r, probe_f, probe_a)

        wait_until(joined, timeout_s=120)
        yield e


def test_normal_author_reaches_all_followers_with_push_and_freshness(env):
    author, readers = uid("a"), [uid("f") for _ in range(3)]
    for f in readers:
        env.follow(f, author)
    sub = env.r.pubsub()
    sub.subscribe(tls.channel(readers[0]))
    sub.get_message(timeout=1)
    pid = env.post(author)
    for f in readers:
        wait_until(lambda f=f: pid in env.tl(f))
    msg = wait_until(lambda: sub.get_message(timeout=0.5))
    assert json.loads(msg["data"]) == {"post_id": pid, "author_id": author, "op": "ADD"}
    fresh = tls.freshness(env.r, readers[1])
    assert fresh["topic"] == "posts.v1" and int(fresh["offset"]) >= 0
    assert [p["post_id"] for p in env.home(readers[2])] == [pid]
    assert graph.counts(env.r, author)["followers"] == 3


def test_celebrity_not_fanned_out_but_merged_at_read(env):
    celeb, readers = uid("celeb"), [uid("f") for _ in range(6)]
    for f in readers:
        env.follow(f, celeb)
    assert graph.is_celebrity(env.r, celeb, 5)
    pid = env.post(celeb)
    control = uid("ctl")  # a normal author posting after the celebrity: fan-out has passed it
    env.follow(readers[0], control)
    after = env.post(control)
    wait_until(lambda: after in env.tl(readers[0]))
    assert all(pid not in env.tl(f) for f in readers)
    assert graph.celebrity_followees(env.r, readers[0], 5) == [celeb]
    assert [p["post_id"] for p in env.home(readers[0])] == [after, pid]
    assert [p["post_id"] for p in env.home(readers[1])] == [pid]


def test_inactive_reader_skipped_then_rebuilt_exactly_once(env):
    author, active, idle = uid("a"), uid("act"), uid("idle")
    env.follow(active, author)
    env.follow(idle, author)
    first = env.post(author)
    wait_until(lambda: first in env.tl(idle))
    tls.touch_reader(env.r, idle, at_ms=1_000)  # last seen in 1970: inactive
    pid = env.post(author)
    wait_until(lambda: pid in env.tl(active))
    wait_until(lambda: env.r.exists(tls.k_stale(idle)))
    assert env.tl(idle) == []
    results: list[list[int]] = []

    def read() -> None:
        results.append([p["post_id"] for p in env.home(idle)])

    threads = [threading.Thread(target=read) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [[pid, first]] * 6
    assert int(env.r.get(tls.k_rebuilds(idle))) == 1
    assert env.tl(idle) == [pid, first]


def test_unfollow_hides_at_once_then_timeline_cleaned(env):
    author, reader = uid("a"), uid("r")
    env.follow(reader, author)
    pid = env.post(author)
    wait_until(lambda: pid in env.tl(reader))
    env.send(edge("Unfollowed", reader, author))
    wait_until(lambda: env.r.sismember(tls.k_negative(reader), author))
    assert env.home(reader) == []
    wait_until(lambda: pid not in env.tl(reader))
    assert not graph.is_following(env.r, reader, author)


def test_block_hides_both_ways_and_removes_follows(env):
    a, b = uid("a"), uid("b")
    env.follow(a, b)
    env.follow(b, a)
    pa, pb = env.post(a), env.post(b)
    wait_until(lambda: pb in env.tl(a) and pa in env.tl(b))
    env.send(edge("Blocked", a, b))
    wait_until(lambda: env.r.sismember(tls.k_negative(b), a))
    assert [p["post_id"] for p in env.home(a)] == [pa] and [p["post_id"] for p in env.home(b)] == [pb]  # own only
    assert not graph.is_following(env.r, a, b) and not graph.is_following(env.r, b, a)
    env.send(edge("Followed", b, a))  # a follow across a block is ignored
    later = env.post(a)
    assert later not in env.tl(b) and not graph.is_following(env.r, b, a)


def test_delete_disappears_everywhere_and_edit_shows_edited(env):
    author, reader = uid("a"), uid("r")
    env.follow(reader, author)
    keep, gone = env.post(author, text="v1"), env.post(author, text="bye")
    wait_until(lambda: {keep, gone} <= set(env.tl(reader)))
    env.send(post_deleted(author, gone))
    env.send(post_edited(author, keep, "v2"))
    wait_until(lambda: env.r.sismember(post_store.DELETED, gone))
    wait_until(lambda: post_store.get_posts(env.s, env.r, [keep])[keep]["edited"])
    page = env.home(reader)
    assert [(p["post_id"], p["text"], p["edited"]) for p in page] == [(keep, "v2", True)]
    wait_until(lambda: gone not in env.tl(reader))
    assert post_store.get_posts(env.s, env.r, [gone])[gone]["deleted"] is True


def test_follow_backfills_bounded_recent_posts(env):
    author, reader = uid("a"), uid("r")
    pids = [env.post(author) for _ in range(5)]
    env.follow(reader, author)
    wait_until(lambda: len(env.tl(reader)) == 3)
    assert env.tl(reader) == sorted(pids, reverse=True)[:3]


def test_visibility_followers_vs_friends(env):
    author, follower, friend = uid("a"), uid("fol"), uid("fr")
    env.follow(follower, author)
    env.send(edge("FriendRequestSent", friend, author))
    env.send(edge("FriendRequestAccepted", friend, author))
    wait_until(lambda: env.r.sismember(graph.k_friends(author), friend))
    p_fol = env.post(author, visibility="FOLLOWERS")
    p_fr = env.post(author, visibility="FRIENDS")
    wait_until(lambda: {p_fol, p_fr} <= set(env.tl(friend)))
    wait_until(lambda: p_fol in env.tl(follower))
    assert p_fr not in env.tl(follower)
    assert [p["post_id"] for p in env.home(follower)] == [p_fol]


def befriend(env: Env, a: str, b: str) -> None:
    env.send(edge("FriendRequestSent", a, b))
    env.send(edge("FriendRequestAccepted", a, b))
    wait_until(lambda: env.r.sismember(graph.k_friends(b), a))


def test_unfollowing_a_friend_keeps_the_friendship_and_unfriending_ends_it(env):
    """Issue #14 item 8: following and friendship are separate relations."""
    a, b, watcher = uid("a"), uid("b"), uid("w")
    befriend(env, a, b)
    env.follow(watcher, b)  # watcher's timeline shows when fan-out has passed b's later posts
    befriend(env, watcher, b)
    p1 = env.post(b, visibility="FRIENDS")
    wait_until(lambda: p1 in env.tl(a))
    env.send(edge("Unfollowed", a, b))
    wait_until(lambda: not graph.is_following(env.r, a, b))
    wait_until(lambda: p1 not in env.tl(a))
    assert env.home(a) == []
    # still friends, in Redis and Cassandra, and b still follows a
    assert graph.is_friend(env.r, a, b) and graph.is_friend(env.r, b, a)
    assert graph.list_edges(env.s, "friends", a) == [b] and graph.is_following(env.r, b, a)
    assert graph.counts(env.r, a) == {"followers": 1, "following": 0, "friends": 1}
    # a FRIENDS post of b's is not pushed to a (no longer a follower), but a may open it
    p2 = env.post(b, visibility="FRIENDS")
    wait_until(lambda: p2 in env.tl(watcher))
    assert p2 not in env.tl(a)
    post = post_store.get_posts(env.s, env.r, [p2])[p2]
    assert env.reads.readers.visibility.may_view(a, post)
    assert not env.reads.readers.visibility.may_view(uid("stranger"), post)
    # unfriending ends the friendship and the follows both ways
    pa = env.post(a)
    wait_until(lambda: pa in env.tl(b))
    env.send(edge("Unfriended", b, a))
    wait_until(lambda: not graph.is_friend(env.r, a, b))
    assert not graph.is_friend(env.r, b, a) and not graph.is_following(env.r, b, a)
    assert graph.list_edges(env.s, "friends", a) == [] and graph.list_edges(env.s, "friends", b) == [watcher]
    wait_until(lambda: pa not in env.tl(b))
    assert not env.reads.readers.visibility.may_view(a, post)
    assert graph.counts(env.r, a) == {"followers": 0, "following": 0, "friends": 0}


def test_accept_or_decline_without_a_pending_request_is_ignored_and_dead_lettered(env, stack):
    """Forced friendship (issue #14 item 1): accepts that no pending request backs change nothing."""
    c = Consumer({"bootstrap.servers": stack.kafka_bootstrap, "group.id": uid("dl", register=False),
                  "enable.auto.commit": False})
    start = end_offsets(c, ["dead-letters.v1"])
    c.assign([TopicPartition(t, p, hi) for (t, p), (_, hi) in start.items()])
    victim, forcer = uid("victim"), uid("forcer")  # forcer accepts a request victim never sent
    declined_a, declined_b = uid("da"), uid("db")  # b declines a's request, then accepts it
    twice_a, twice_b = uid("ta"), uid("tb")  # b accepts a's request twice
    bad = [env.send(edge("FriendRequestAccepted", victim, forcer))]
    env.send(edge("FriendRequestSent", declined_a, declined_b))
    env.send(edge("FriendRequestDeclined", declined_a, declined_b))
    bad.append(env.send(edge("FriendRequestAccepted", declined_a, declined_b)))
    bad.append(env.send(edge("FriendRequestDeclined", declined_a, declined_b)))
    env.send(edge("FriendRequestSent", twice_a, twice_b))
    env.send(edge("FriendRequestAccepted", twice_a, twice_b))
    bad.append(env.send(edge("FriendRequestAccepted", twice_a, twice_b)))
    # sentinels keyed like the accepts (graph.v1 key: to_id = followee): applied after them
    for to in (forcer, declined_b, twice_b):
        env.follow(uid("sentinel"), to)
    assert not env.r.sismember(graph.k_friends(forcer), victim)
    assert not graph.is_following(env.r, forcer, victim) and not graph.is_following(env.r, victim, forcer)
    assert graph.list_edges(env.s, "friends", forcer) == []
    assert not env.r.sismember(graph.k_friends(declined_b), declined_a)
    assert env.r.sismember(graph.k_friends(twice_b), twice_a)
    assert graph.list_edges(env.s, "friends", twice_b) == [twice_a]
    assert not graph.has_pending_request(env.r, env.s, twice_a, twice_b)
    serde = Serde(stack.registry_url)
    letters: dict[str, dict[str, Any]] = {}

    def poll() -> bool:
        for msg in c.consume(100, 0.5):
            d = serde.decode(msg.value())
            if d.value["error_type"] == "NoPendingRequest":
                letters[serde.decode(d.value["value"]).value["event_id"]] = d.value
        return {e["event_id"] for e in bad} <= set(letters)

    try:
        wait_until(poll, timeout_s=60)
    finally:
        c.close()
    first = letters[bad[0]["event_id"]]
    assert first["source_topic"] == "graph.v1" and first["consumer_group"].startswith("feedstream-graph")
    assert f"no pending friend request from {victim} to {forcer}" in first["error"]


def collect_letters(stack, c: Consumer, event_ids: set[str], error_types: set[str]) -> dict[str, dict[str, Any]]:
    """Dead letters of ``event_ids`` read from ``c`` (assigned past the end before they were sent)."""
    serde = Serde(stack.registry_url)
    letters: dict[str, dict[str, Any]] = {}

    def poll() -> bool:
        for msg in c.consume(100, 0.5):
            d = serde.decode(msg.value())
            if d.value["error_type"] in error_types:
                letters[serde.decode(d.value["value"]).value["event_id"]] = d.value
        return event_ids <= set(letters)

    try:
        wait_until(poll, timeout_s=60)
    finally:
        c.close()
    return letters


def dlq_consumer(stack) -> Consumer:
    c = Consumer({"bootstrap.servers": stack.kafka_bootstrap, "group.id": uid("dl", register=False),
                  "enable.auto.commit": False})
    start = end_offsets(c, ["dead-letters.v1"])
    c.assign([TopicPartition(t, p, hi) for (t, p), (_, hi) in start.items()])
    return c


def test_edit_or_delete_of_an_unknown_post_is_dead_lettered_never_materialised(env, stack):
    """Issue #14 item 6: a PostEdited for an unknown post id must not create a readable post."""
    c = dlq_consumer(stack)
    author, reader, other = uid("a"), uid("r"), uid("o")
    env.follow(reader, author)
    theirs = env.post(other)
    ghost_edit, ghost_delete = new_post_id(), new_post_id()  # never created
    bad = [env.send(post_edited(author, ghost_edit, "forged")), env.send(post_deleted(author, ghost_delete)),
           env.send(post_edited(author, theirs, "not mine"))]
    sentinel = env.post(author)  # same key (author): applied after the bad records
    wait_until(lambda: sentinel in env.tl(reader))
    assert post_store.stored_posts(env.s, [ghost_edit, ghost_delete]) == {}
    assert post_store.get_posts(env.s, env.r, [theirs])[theirs]["text"] == "hello"
    assert env.tl(reader) == [sentinel] and [p["post_id"] for p in env.home(reader)] == [sentinel]
    letters = collect_letters(stack, c, {e["event_id"] for e in bad}, {"UnknownPost", "NotPostAuthor"})
    first = letters[bad[0]["event_id"]]
    assert first["source_topic"] == "posts.v1" and first["error_type"] == "UnknownPost"
    assert f"no post {ghost_edit}" in first["error"]
    assert letters[bad[2]["event_id"]]["error_type"] == "NotPostAuthor"


def test_a_graph_event_naming_a_user_who_never_registered_is_dead_lettered(env, stack):
    """Issue #14 item 6: users on users.v1 are not co-partitioned with graph.v1; a user registered a
    moment before the follow is waited for, one who never registered is refused with a reason."""
    c = dlq_consumer(stack)
    ann, ghost = uid("ann"), uid("ghost", register=False)
    bad = [env.send(edge("Followed", ann, ghost)), env.send(edge("Followed", ghost, ann)),
           env.send(edge("FriendRequestSent", ghost, ann))]
    fresh = uid("fresh")  # registered now, followed at once: the follow waits for the users view
    env.follow(ann, fresh)
    letters = collect_letters(stack, c, {e["event_id"] for e in bad}, {"UnknownUser"})
    assert f"Followed: user {ghost} never registered" in letters[bad[0]["event_id"]]["error"]
    assert letters[bad[0]["event_id"]]["source_topic"] == "graph.v1"
    assert not graph.is_following(env.r, ann, ghost) and not graph.is_following(env.r, ghost, ann)
    assert not graph.has_pending_request(env.r, env.s, ghost, ann)
    assert graph.counts(env.r, ann) == {"followers": 0, "following": 1, "friends": 0}


def test_timeline_is_capped_newest_kept(env):
    author, reader = uid("a"), uid("r")
    env.follow(reader, author)
    pids = [env.send(post_created(author))["post_id"] for _ in range(13)]
    wait_until(lambda: pids[-1] in env.tl(reader))
    assert env.tl(reader) == sorted(pids, reverse=True)[:10]


def test_timeline_updates_topic_carries_decodable_events_with_source_offsets(env, stack):
    author, reader = uid("a"), uid("r")
    env.follow(reader, author)
    c = Consumer({"bootstrap.servers": stack.kafka_bootstrap, "group.id": uid("tu"), "enable.auto.commit": False})
    start = end_offsets(c, ["timeline-updates.v1"])
    c.assign([TopicPartition(t, p, hi) for (t, p), (_, hi) in start.items()])
    report = env.send_report(post_created(author))
    serde = Serde(stack.registry_url)
    found: list[dict[str, Any]] = []

    def poll() -> bool:
        for msg in c.consume(100, 0.5):
            d = serde.decode(msg.value())
            if d.value["reader_id"] == reader:
                found.append({"name": d.name, "key": msg.key(), **d.value})
        return bool(found)

    try:
        wait_until(poll, timeout_s=60)
    finally:
        c.close()
    u = found[0]
    assert u["name"] == "TimelineUpdate" and u["key"] == reader.encode()
    assert (u["op"], u["author_id"], u["source_topic"]) == ("ADD", author, "posts.v1")
    assert (u["source_partition"], u["source_offset"]) == (report.partition, report.offset)
    assert u["post_id"] == env.tl(reader)[0]


def test_follow_and_post_at_the_same_moment_never_miss_the_post(env):
    # a follow and a post by the followee sent back to back, so the two workers race on them
    pairs = [(uid("rf"), uid("ra")) for _ in range(25)]
    posts = {}
    for reader, author in pairs:
        env.send(edge("Followed", reader, author))
        posts[reader] = env.send(post_created(author))["post_id"]
    for reader, _ in pairs:
        wait_until(lambda reader=reader: posts[reader] in env.tl(reader), timeout_s=60)


def test_reset_group_offsets_refuses_a_running_group_and_rewinds_a_stopped_one(env, stack):
    from streams.errors import StreamsError

    with pytest.raises(StreamsError, match="stop its workers"):
        reset_group_offsets(stack, "fanout", suffix=SUFFIX)
    suffix = f"-reset-{uuid.uuid4().hex[:8]}"
    lows = reset_group_offsets(stack, "fanout", suffix=suffix)
    c = Consumer({"bootstrap.servers": stack.kafka_bootstrap, "group.id": f"feedstream-fanout{suffix}"})
    try:
        got = c.committed([TopicPartition("posts.v1", p) for p in lows], timeout=15)
    finally:
        c.close()
    assert {tp.partition: tp.offset for tp in got} == lows


def committed_to_end(stack, group: str, topic: str) -> bool:
    """Whether ``group`` has committed every partition of ``topic`` up to its end (side effects done)."""
    c = Consumer({"bootstrap.servers": stack.kafka_bootstrap, "group.id": group})
    try:
        ends = end_offsets(c, [topic])
        got = c.committed([TopicPartition(t, p) for t, p in ends], timeout=15)
        return all(tp.offset >= ends[(tp.topic, tp.partition)][1] for tp in got)
    finally:
        c.close()


def snapshot(r: _redis.Redis, s: Session, users: list[str]) -> dict[str, Any]:
    """Every user's timeline, negative set, counts (Redis and Cassandra) and durable edges."""
    out = {}
    for u in users:
        row = s.execute("SELECT followers, following, friends FROM user_counts WHERE user_id=%s", (u,)).one()
        out[u] = {
            "timeline": r.zrevrange(tls.k_timeline(u), 0, -1, withscores=True),
            "negative": sorted(r.smembers(tls.k_negative(u))),
            "counts": graph.counts(r, u),
            "durable_counts": tuple(row) if row else None,
            "followers": sorted(graph.list_edges(s, "followers", u)),
            "friends": sorted(graph.list_edges(s, "friends", u)),
            "blocks": sorted(graph.list_edges(s, "blocks", u)),
            "author_index": post_store.author_posts(s, u, None, 100),
        }
    return out


def test_replay_from_offset_0_into_wiped_stores_gives_identical_timelines(env, stack):
    # a post by an author who never registered: the live worker refuses it, so must the replay
    ghost = uid("ghost", register=False)
    env.send(post_created(ghost))
    for name, topic in (("graph", "graph.v1"), ("fanout", "posts.v1")):
        wait_until(lambda name=name, topic=topic: committed_to_end(stack, f"feedstream-{name}{SUFFIX}", topic),
                   timeout_s=90, interval_s=1.0)
    users = list(USERS)
    before = snapshot(env.r, env.s, users)
    assert sum(len(v["timeline"]) for v in before.values()) > 30  # the module's scenarios are in there
    s2 = wiped(stack, "fs_itest_replay", 9)
    stats = replay_in_order(s2, env.knobs)
    assert stats.posts > 0 and stats.graph > 0 and stats.skipped >= 1
    after = snapshot(redis_store.client(s2), cassandra.session(s2), users)
    assert before[ghost]["author_index"] == after[ghost]["author_index"] == []
    diff = {u: (before[u], after[u]) for u in users if before[u] != after[u]}
    assert diff == {}
