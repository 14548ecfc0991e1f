"""A Redis loss on the real stack (issue #13 defect 4): feeds, counts and fan-out right again, no replay.

Graph and fan-out workers run as subprocesses on their own wiped keyspace and Redis database. A
small world is built through Kafka; then the test's Redis database is flushed (``FLUSHDB`` of its
own database: the shared test Redis serves other modules) and nothing is replayed.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from support.api import api_settings
from support.events import edge, post_deleted
from support.wait import wait_until

from core.events import new_event, post_created
from core.settings import isolated, with_overrides
from models.ranking import EngagementRecencyRanker
from ops.workers import workers
from serving.feed.engines import ReadEngines
from serving.feed.pipeline import read_feed
from stores import cassandra, graph, readside
from stores import posts as post_store
from stores import redis as redis_store
from stores import timelines as tls
from streams.admin import apply_all
from streams.producer import EventProducer

pytestmark = pytest.mark.timeout(600)
KNOBS = dict(timeline_cap=50, celebrity_threshold=3, backfill_limit=3, inactive_days=30)
SUFFIX = f"-rloss-{uuid.uuid4().hex[:8]}"


REGISTER: list[EventProducer] = []


def uid(tag: str) -> str:
    """A fresh user id, registered (graph events naming unregistered users are dead-lettered)."""
    u = f"{tag}-{uuid.uuid4().hex[:10]}"
    if REGISTER:
        REGISTER[0].send("UserRegistered", new_event(u, user_id=u, handle=u, display_name=u, bio=None,
                                                     avatar_url=None))
    return u


class Env:
    def __init__(self, r: Any, s: Any, producer: EventProducer, reads: ReadEngines) -> None:
        self.r, self.s, self.producer, self.reads = r, s, producer, reads

    def send(self, event: tuple[str, dict[str, Any]]) -> dict[str, Any]:
        self.producer.send(*event)
        return event[1]

    def follow(self, a: str, b: str) -> None:
        self.send(edge("Followed", a, b))
        wait_until(lambda: readside.edge_exists(self.s, "following", a, b))

    def post(self, author: str, **kw: Any) -> int:
        pid = self.send(post_created(author, **kw))["post_id"]
        wait_until(lambda: pid in {int(x) for x in self.r.zrange(tls.k_timeline(author), 0, -1)})
        return pid

    def home(self, reader: str, limit: int = 20, before: int | None = None) -> list[int]:
        return [p["post_id"] for p in read_feed(self.reads, reader, "chronological", limit, before)["items"]]

    def counts(self, user: str) -> dict[str, int]:
        return self.reads.readers.graph.counts(user)


@pytest.fixture(scope="module")
def env(stack, tmp_path_factory):
    apply_all(stack, echo=lambda *_: None)
    s = isolated(stack, "fs_itest_redisloss", 12)
    redis_store.client(s).flushdb()
    c = cassandra.cluster(s).connect()
    c.execute("DROP KEYSPACE IF EXISTS fs_itest_redisloss", timeout=120)
    c.cluster.shutdown()
    r, sess = redis_store.client(s), cassandra.session(s)
    with EventProducer(stack) as producer, \
            workers(s, ("graph", "fanout", "users"), log_dir=tmp_path_factory.mktemp("workers"),
                    topology_group_suffix=SUFFIX, **KNOBS) as procs:
        REGISTER.append(producer)
        reads = ReadEngines(api_settings(with_overrides(s, **KNOBS)), EngagementRecencyRanker())
        e = Env(r, sess, producer, reads)
        pa, pf, sent = uid("probe"), uid("probe"), [0.0]

        def joined() -> bool:
            assert all(p.poll() is None for p in procs), "a worker exited; see its log"
            if time.monotonic() - sent[0] > 3:
                e.send(edge("Followed", pf, pa))
                sent[0] = time.monotonic()
            return graph.is_following(r, pf, pa)

        wait_until(joined, timeout_s=120)
        yield e
        REGISTER.clear()
        reads.close()


def test_feeds_counts_and_fanout_right_after_redis_flush(env):
    a, b, celeb = uid("a"), uid("b"), uid("celeb")
    r1, r2, r3, r4, late = (uid(f"r{i}") for i in range(5))
    for reader in (r1, r2, r3, r4):
        env.follow(reader, celeb)  # 4 followers > threshold 3: merged at read time
    env.follow(r1, b)
    env.follow(r2, a)
    env.follow(r3, b)
    env.send(edge("FriendRequestSent", r1, a))
    wait_until(lambda: graph.has_pending_request(env.r, env.s, r1, a))
    env.send(edge("FriendRequestAccepted", r1, a))
    wait_until(lambda: readside.edge_exists(env.s, "friends", a, r1))
    env.send(edge("Blocked", r3, b))  # drops r3 -> b
    wait_until(lambda: not readside.edge_exists(env.s, "following", r3, b))
    a_posts = [env.post(a), env.post(a, visibility="FRIENDS"), env.post(a, visibility="FOLLOWERS"), env.post(a)]
    b_posts = [env.post(b), env.post(b)]
    c_posts = [env.post(celeb), env.post(celeb)]
    env.send(post_deleted(a, a_posts[0]))
    wait_until(lambda: env.r.sismember(post_store.DELETED, a_posts[0]))
    wait_until(lambda: a_posts[3] in {int(x) for x in env.r.zrange(tls.k_timeline(r1), 0, -1)})
    wait_until(lambda: b_posts[1] in {int(x) for x in env.r.zrange(tls.k_timeline(r1), 0, -1)})
    people = [a, b, celeb, r1, r2, r3, r4]
    feeds = {u: env.home(u) for u in people}
    counts = {u: env.counts(u) for u in people}
    # the world is what it should be before the loss
    assert feeds[r1] == sorted(a_posts[1:] + b_posts + c_posts, reverse=True)
    assert feeds[r2] == sorted([a_posts[2], a_posts[3]] + c_posts, reverse=True)
    assert feeds[r3] == sorted(c_posts, reverse=True) and feeds[r4] == sorted(c_posts, reverse=True)
    assert feeds[a] == sorted(a_posts[1:], reverse=True)  # own posts
    assert counts[celeb]["followers"] == 4 and counts[a] == {"followers": 2, "following": 1, "friends": 1}

    env.r.flushdb()  # the loss: Redis restarted without persistence
    assert env.r.dbsize() == 0

    # a new post fans out into the cold Redis before anyone reads: followers reloaded from Cassandra
    new_a = env.post(a)
    wait_until(lambda: new_a in {int(x) for x in env.r.zrange(tls.k_timeline(r2), 0, -1)})
    assert env.r.exists(redis_store.EPOCH)
    assert {int(x) for x in env.r.zrange(tls.k_timeline(r1), 0, -1)} >= {new_a}
    # every reader's feed is whole again on first read (timeline rebuilt once), profiles counted right
    for u in people:
        expect = sorted(feeds[u] + ([new_a] if u in (a, r1, r2) else []), reverse=True)
        assert env.home(u) == expect, u
        assert env.counts(u) == counts[u], u
    assert int(env.r.get(tls.k_rebuilds(r1))) == 1
    # a celebrity's new post is merged with the older ones (author cache refilled, not one entry)
    new_c = env.post(celeb)
    assert env.home(r4) == [new_c, *sorted(c_posts, reverse=True)]
    # a follow after the loss counts on top of the durable sets, not from an empty set
    env.follow(late, a)
    wait_until(lambda: env.counts(a)["followers"] == 3)
    assert readside.counts(env.s, a) == {"followers": 3, "following": 1, "friends": 1}
    assert graph.followers(env.r, a) == {r1, r2, late}
    wait_until(lambda: env.home(late) == sorted([new_a, a_posts[3], a_posts[2]], reverse=True))
    # blocks and friendships are back in Redis for visibility decisions
    assert env.r.sismember(graph.k_blocks(r3), b) and env.r.sismember(tls.k_negative(r3), b)
    assert env.reads.readers.graph.relation(r1, a).friend


def test_recovery_measured_on_a_seeded_world(stack, tmp_path):
    """``bench.redis_loss`` at a small scale: zero wrong feeds or counts after the flush (figures printed)."""
    import json

    from bench import redis_loss

    res = redis_loss.run(api_settings(stack), users=300, mean=12.0, posts=3, celebrity=40)
    print(json.dumps(res, indent=2))
    (tmp_path / "redis_loss.json").write_text(json.dumps(res, indent=2))
    assert res["warm"]["feeds_wrong"] == 0 and res["warm"]["counts_wrong"] == 0
    assert res["after_loss"]["feeds_wrong"] == 0, res["after_loss"]
    assert res["after_loss"]["counts_wrong"] == 0, res["after_loss"]
    assert res["new_posts_missing"] == 0
