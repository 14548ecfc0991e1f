"""Re-delivered events never undo newer ones: last writer wins by event time (issues 13 and 14).

Kafka delivers at least once and client retries reuse event ids, so a ``PostCreated`` or a
``Followed`` can reach the workers again after the edit, delete or unfollow that followed it. Here
the very same events (same event id, same ``occurred_at``) are produced again, and the views must
not move: in Cassandra, in Redis and in what the API serves. Graph, fan-out and users workers run
as subprocesses on their own wiped keyspace and Redis database; the last test replays the log into
another wiped keyspace and compares every graph view of this module's users.
"""

from __future__ import annotations

import functools
import time
import uuid
from typing import Any

import pytest
from support.api import api_settings, bearer, running_app
from support.events import edge, post_deleted, post_edited
from support.wait import wait_until as _wait_until

from core.events import new_event, post_created
from core.settings import Settings, isolated, with_overrides
from ops.workers import workers
from stores import cassandra, graph
from stores import posts as post_store
from stores import redis as redis_store
from stores import timelines as tls
from streams.admin import apply_all
from streams.producer import EventProducer
from topologies.replay import replay_in_order

wait_until = functools.partial(_wait_until, timeout_s=180)  # generous: the test machine is shared
KNOBS = {"timeline_cap": 10, "celebrity_threshold": 5, "backfill_limit": 3, "inactive_days": 30}
SUFFIX = f"-redeliver-{uuid.uuid4().hex[:8]}"
USERS: list[str] = []


def wiped(stack: Settings, keyspace: str, db: int) -> Settings:
    """Isolated settings whose keyspace is dropped and Redis database flushed."""
    s = isolated(stack, keyspace, db)
    redis_store.client(s).flushdb()
    c = cassandra.cluster(s).connect()
    c.execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=120)
    c.cluster.shutdown()
    return s


class Env:
    def __init__(self, s: Settings, producer: EventProducer) -> None:
        self.settings, self.producer = s, producer
        self.r, self.s = redis_store.client(s), cassandra.session(s)

    def send(self, event: tuple[str, dict[str, Any]]) -> dict[str, Any]:
        self.producer.send(*event)
        return event[1]

    def uid(self, tag: str) -> str:
        u = f"{tag}-{uuid.uuid4().hex[:10]}"
        USERS.append(u)
        self.send(("UserRegistered", new_event(u, user_id=u, handle=u, display_name=u, bio=None, avatar_url=None)))
        return u

    def follow(self, f: str, e: str) -> None:
        self.send(edge("Followed", f, e))
        wait_until(lambda: graph.is_following(self.r, f, e))

    def stored(self, pid: int) -> dict[str, Any]:
        return post_store.stored_posts(self.s, [pid]).get(pid, {})

    def sentinel_post(self, author: str) -> int:
        """A new post by ``author`` (same partition as their earlier events), once fan-out applied it."""
        pid = self.send(post_created(author))["post_id"]
        wait_until(lambda: self.stored(pid))
        wait_until(lambda: self.r.zscore(post_store.k_author(author), str(pid)) is not None)
        return pid


@pytest.fixture(scope="module")
def env(stack: Settings, tmp_path_factory: pytest.TempPathFactory):
    apply_all(stack, echo=lambda *_: None)
    s = wiped(stack, "fs_itest_redeliver", 13)
    with EventProducer(stack) as producer, \
            workers(s, ("graph", "fanout", "users"), log_dir=tmp_path_factory.mktemp("workers"),
                    topology_group_suffix=SUFFIX, **KNOBS) as procs:
        e = Env(s, producer)
        probe_a, probe_f = e.uid("probe"), e.uid("probe")
        sent = [0.0]

        def joined() -> bool:  # resend the probe until the workers (catching up from offset 0) see it
            assert all(p.poll() is None for p in procs), "a worker exited; see its log"
            if time.monotonic() - sent[0] > 3:
                e.send(edge("Followed", probe_f, probe_a))
                sent[0] = time.monotonic()
            return graph.is_following(e.r, probe_f, probe_a)

        wait_until(joined, timeout_s=420)
        yield e


def test_resent_create_and_edit_after_a_delete_leave_the_post_deleted(env: Env) -> None:
    author, reader = env.uid("a"), env.uid("r")
    env.follow(reader, author)
    created = post_created(author, text="first")
    pid = env.send(created)["post_id"]
    wait_until(lambda: pid in [int(m) for m in env.r.zrange(tls.k_timeline(reader), 0, -1)])
    edited = post_edited(author, pid, "second")
    env.send(edited)
    wait_until(lambda: env.stored(pid).get("text") == "second")
    env.send(post_deleted(author, pid))
    wait_until(lambda: env.stored(pid).get("deleted"))
    env.send(created)  # the same events again: same event ids, same occurred_at
    env.send(edited)
    later = env.sentinel_post(author)  # applied after the re-sent events (one partition per author)
    row = env.stored(pid)
    assert row["deleted"] is True and row["text"] == "second"
    assert pid not in [p for p, _ in post_store.author_posts(env.s, author, None, 50)]
    assert env.r.zscore(post_store.k_author(author), str(pid)) is None
    assert env.r.sismember(post_store.DELETED, str(pid))
    api = api_settings(with_overrides(env.settings, **KNOBS))
    with running_app(api) as client:
        assert client.get(f"/v1/posts/{pid}", headers=bearer(api, reader)).status_code == 404
        home = client.get(f"/v1/users/{reader}/feed", headers=bearer(api, reader))
        assert home.status_code == 200
        ids = [int(i["post_id"]) for i in home.json()["items"]]
        assert later in ids and pid not in ids


def test_resent_create_after_an_edit_keeps_the_edit_in_store_cache_and_api(env: Env) -> None:
    author = env.uid("a")
    created = post_created(author, text="draft")
    pid = env.send(created)["post_id"]
    wait_until(lambda: env.stored(pid))
    env.send(post_edited(author, pid, "final"))
    wait_until(lambda: env.stored(pid).get("text") == "final")
    api = api_settings(with_overrides(env.settings, **KNOBS))
    with running_app(api) as client:
        got = client.get(f"/v1/posts/{pid}", headers=bearer(api, author))
        assert got.status_code == 200 and got.json()["text"] == "final"  # the cache is filled now
        env.send(created)
        env.sentinel_post(author)
        row = env.stored(pid)
        assert row["text"] == "final" and row["edited"] is True and not row["deleted"]
        got = client.get(f"/v1/posts/{pid}", headers=bearer(api, author))
        assert got.status_code == 200 and got.json()["text"] == "final"
    assert int(env.r.get(post_store.k_version(pid))) == post_store.version("PostEdited", {
        "occurred_at": row["updated_at"]})


def test_resent_create_after_a_narrowing_edit_does_not_fan_out_again(env: Env) -> None:
    """A PUBLIC create re-delivered after the edit that made the post FRIENDS-only must not put it
    back on a follower's timeline who is not a friend (fan-out skips superseded events)."""
    author, follower = env.uid("a"), env.uid("f")
    env.follow(follower, author)
    created = post_created(author, text="open")
    pid = env.send(created)["post_id"]
    on_timeline = lambda: pid in [int(m) for m in env.r.zrange(tls.k_timeline(follower), 0, -1)]
    wait_until(on_timeline)
    env.send(post_edited(author, pid, "friends only", visibility="FRIENDS"))
    wait_until(lambda: not on_timeline())
    env.send(created)  # re-delivered
    env.sentinel_post(author)  # applied after it (one partition per author)
    later = env.sentinel_post(author)
    wait_until(lambda: later in [int(m) for m in env.r.zrange(tls.k_timeline(follower), 0, -1)])
    assert not on_timeline()
    assert env.stored(pid).get("visibility") == "FRIENDS"


def _settled(env: Env, followee: str) -> None:
    """Wait until the graph worker passed everything sent so far to ``followee``'s partition."""
    env.follow(env.uid("sentinel"), followee)


def test_resent_follow_after_unfollow_does_not_recreate_the_edge(env: Env) -> None:
    a, b = env.uid("a"), env.uid("b")
    pid = env.sentinel_post(b)
    follow = edge("Followed", a, b)
    env.send(follow)
    wait_until(lambda: graph.is_following(env.r, a, b))
    wait_until(lambda: pid in [int(m) for m in env.r.zrange(tls.k_timeline(a), 0, -1)])  # back-filled
    env.send(edge("Unfollowed", a, b))
    wait_until(lambda: not graph.is_following(env.r, a, b))
    env.send(follow)  # re-delivered
    _settled(env, b)
    assert not graph.is_following(env.r, a, b)
    assert a not in graph.list_edges(env.s, "followers", b)
    assert pid not in [int(m) for m in env.r.zrange(tls.k_timeline(a), 0, -1)]  # no back-fill either
    assert env.r.sismember(tls.k_negative(a), b)


def test_resent_block_and_friendship_events_do_not_undo_newer_ones(env: Env) -> None:
    a, b = env.uid("a"), env.uid("b")
    blocked = edge("Blocked", a, b)
    env.send(blocked)
    wait_until(lambda: env.r.sismember(graph.k_blocks(a), b))
    env.send(edge("Unblocked", a, b))
    wait_until(lambda: not env.r.sismember(graph.k_blocks(a), b))
    env.send(blocked)
    c, d = env.uid("c"), env.uid("d")
    sent, accepted = edge("FriendRequestSent", c, d), edge("FriendRequestAccepted", c, d)
    env.send(sent)
    env.send(accepted)
    wait_until(lambda: graph.is_friend(env.r, c, d))
    env.send(edge("Unfriended", d, c))
    wait_until(lambda: not graph.is_friend(env.r, c, d))
    env.send(sent)
    env.send(accepted)
    _settled(env, b)
    _settled(env, d)
    assert not env.r.sismember(graph.k_blocks(a), b) and graph.list_edges(env.s, "blocks", a) == []
    assert not graph.is_friend(env.r, c, d) and graph.list_edges(env.s, "friends", c) == []
    assert not graph.has_pending_request(env.r, env.s, c, d)
    assert not graph.is_following(env.r, c, d) and not graph.is_following(env.r, d, c)


def _views(s: Settings, users: list[str]) -> dict[str, Any]:
    r, sess = redis_store.client(s), cassandra.session(s)
    out = {}
    for u in users:
        graph.ensure_loaded(r, sess, [u])
        out[u] = {"followers": graph.followers(r, u), "following": graph.following(r, u),
                  "friends": graph.friends(r, u), "blocks": graph.list_edges(sess, "blocks", u),
                  "requests": sorted(m.decode() for m in r.smembers(graph.k_requests(u))),
                  "negative": sorted(m.decode() for m in r.smembers(tls.k_negative(u)))}
    return out


def test_replay_from_offset_0_gives_identical_graph_views(env: Env, stack: Settings) -> None:
    users = [u for u in USERS if not u.startswith(("probe", "sentinel"))]
    for u in users[-2:]:
        _settled(env, u)
    before = _views(env.settings, users)
    s2 = wiped(stack, "fs_itest_redeliver_replay", 14)
    stats = replay_in_order(s2, with_overrides(env.settings, **KNOBS), names=("graph",))
    assert stats.graph > 0
    after = _views(s2, users)
    assert {u: (before[u], after[u]) for u in users if before[u] != after[u]} == {}
