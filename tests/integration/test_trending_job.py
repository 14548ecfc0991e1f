"""The trending PyFlink job on the embedded MiniCluster against the real Kafka, registry, Redis and Cassandra."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from core.settings import Settings
from streams.serde import Serde
from topologies.trending.logic import WindowSpec

SPEC = WindowSpec(20_000, 10_000, lateness_ms=10_000, out_of_orderness_ms=0)
LABEL = SPEC.label  # "20s"


@pytest.fixture(scope="module")
def settings(stack: Settings) -> Settings:
    """The stack's settings; its registry is Apicurio's Confluent-compatible API."""
    return stack


def _wait(pred: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = pred()
        except Exception as exc:  # noqa: BLE001 (not ready yet: connection refused, key missing, ...)
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what} (last: {last!r})")


class Feed:
    """Unique single-partition topics for one job run, and a producer of posts and engagements."""

    def __init__(self, settings: Settings, post_partitions: int = 1) -> None:
        tag = uuid.uuid4().hex[:8]
        self.settings = settings
        self.posts, self.engagements = f"posts-{tag}", f"engagements-{tag}"
        self.trending, self.late = f"trending-{tag}", f"late-{tag}"
        self.verdicts = f"verdicts-{tag}"
        admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
        for f in admin.create_topics([NewTopic(t, post_partitions if t == self.posts else 1, 1)
                                      for t in (self.posts, self.engagements, self.trending, self.late,
                                                self.verdicts)]).values():
            f.result(timeout=30)
        self.serde = Serde(settings.registry_url)
        self.producer = Producer({"bootstrap.servers": settings.kafka_bootstrap, "enable.idempotence": True})
        self.group = f"trending-{tag}"
        # u1 and u2 are registered (the write API's mark); ``ghost`` never is
        from stores.redis import client
        from stores.users import k_registered

        client(settings).mset({k_registered("u1"): 1, k_registered("u2"): 1})
        self.ghost = f"ghost-{tag}"
        # windows depend on event time only; a fresh base per run (not just per minute: both tests
        # can run within one) keeps Cassandra rows apart
        self.t0 = (time.time_ns() // 1_000_000 // 60_000) * 60_000 - 3_600_000 - (int(tag, 16) % 50_000) * 60_000

    def config(self) -> Any:
        from topologies.trending.job import TrendingConfig

        return TrendingConfig(windows=(SPEC,), k=3, source_topics=(self.posts, self.engagements),
                              post_topic=self.posts, verdict_topic=self.verdicts,
                              trending_topic=self.trending, late_topic=self.late, group_id=self.group,
                              prove_authors=False)  # no users topology runs here: the clock decides

    def _env(self, ts: int) -> dict[str, Any]:
        return {"event_id": str(uuid.uuid4()), "occurred_at": self.t0 + ts, "actor_id": "u1", "schema_version": 1}

    def post(self, ts: int, *tags: str, times: int = 1, author: str = "u1", partition: int | None = None) -> bytes:
        """Produce a PostCreated ``times`` times (re-deliveries: the same event id), to ``partition``
        (None: by key); return its bytes."""
        value = {**self._env(ts), "post_id": 1_000 + ts, "author_id": author, "text": "hi", "media": [],
                 "links": [], "hashtags": list(tags), "mentions": [], "visibility": "PUBLIC"}
        data = self.serde.encode("PostCreated", value, self.posts)
        for _ in range(times):
            if partition is None:
                self.producer.produce(self.posts, data, author.encode())
            else:
                self.producer.produce(self.posts, data, author.encode(), partition=partition)
        return data

    def engage(self, ts: int, record: str, post_id: int, times: int = 1, user: str = "u2") -> bytes:
        """Produce an engagement ``times`` times (the same event id); return its bytes."""
        value = {**self._env(ts), "post_id": post_id, "post_author_id": "u1", "user_id": user}
        if record == "CommentAdded":
            value.update(comment_id=ts + 7, text="nice", parent_comment_id=None)
        if record == "Shared":
            value.update(comment=None)
        data = self.serde.encode(record, value, self.engagements)
        for _ in range(times):
            self.producer.produce(self.engagements, data, str(post_id).encode())
        return data

    def verdict(self, post_ts: int, decision: str, at: int, moderator: bool = False) -> None:
        """Produce the moderation topology's effective verdict on the post made at ``post_ts``, emitted at ``at``."""
        from topologies.moderation.logic import verdict_value

        post_id = 1_000 + post_ts
        ctx = {"content_key": f"post:{post_id}", "kind": "POST", "content_id": post_id, "post_id": post_id,
               "author_id": "u1"}
        m = {"decision": "ALLOW" if moderator else decision, "scores": {"spam": 0.5}, "reasons": [],
             "model_version": "test", "content_version": self.t0 + post_ts, "event_id": "post"}
        d = {"decision": decision, "by": "mod", "reason": "test", "event_id": "decision"} if moderator else None
        value = verdict_value(ctx, m, d, at_ms=self.t0 + at)
        self.producer.produce(self.verdicts, self.serde.encode("ModerationVerdict", value, self.verdicts),
                              ctx["content_key"].encode())

    def flush(self) -> None:
        assert self.producer.flush(30) == 0

    def close(self) -> None:
        """Destroy the producer now, not at garbage collection after the stack stopped."""
        self.producer.flush(10)
        self.producer.close()


@pytest.fixture
def feed(settings: Settings) -> Iterator[Feed]:
    f = Feed(settings)
    try:
        yield f
    finally:
        f.close()


def _history(settings: Settings, scope: str, end: int) -> list[tuple[str, int]]:
    from stores.cassandra import session
    from stores.trending import window_history

    return [(r["item"], r["count"]) for r in window_history(session(settings), scope, end)]


def _clear_redis(settings: Settings) -> Any:
    from stores.redis import client

    r = client(settings)
    for scope in (f"hashtags:{LABEL}", f"posts:{LABEL}", f"viral-hashtags:{LABEL}", f"viral-posts:{LABEL}"):
        r.delete(f"trending:{scope}", f"trending:{scope}:items", f"trending:{scope}:meta")
    return r


def _consume(settings: Settings, topic: str, n: int, timeout_s: float = 30) -> list[tuple[bytes, bytes]]:
    c = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": f"g-{uuid.uuid4().hex[:6]}",
                  "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    out: list[tuple[bytes, bytes]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(out) < n and time.monotonic() < deadline:
            msg = c.poll(0.5)
            if msg is not None and msg.error() is None:
                out.append((msg.key(), msg.value()))
    finally:
        c.close()
    return out


@pytest.mark.timeout(420)
def test_known_answer_windows_late_updates_and_side_output(settings: Settings, feed: Feed,
                                                           tmp_path: Path) -> None:
    from stores.trending import current_trending, late_counts
    from topologies.trending.app import start

    r = _clear_redis(settings)
    late_before = late_counts(r).get(LABEL, 0)
    client = start(settings, feed.config(), checkpoint_dir=tmp_path / "chk", restore=False)
    try:
        t0 = feed.t0
        # phase 1: on-time events; the last one moves the watermark to t0+30999. The first post's
        # author never registered: its hashtag is not counted and it is dead-lettered (offset 0)
        feed.post(1_500, "ghost", author=feed.ghost)
        for ts, tag in ((1_000, "a"), (2_000, "b"), (12_000, "a"), (25_000, "b"), (26_000, "a")):
            feed.post(ts, tag)
        feed.engage(3_000, "Liked", 1)
        feed.engage(4_000, "Shared", 2)
        feed.engage(13_000, "CommentAdded", 1)
        feed.engage(5_000, "Liked", 1, user=feed.ghost)  # by a user who never registered: not counted
        feed.post(31_000, "b")
        feed.flush()
        hashtags = f"hashtags:{LABEL}"
        _wait(lambda: current_trending(r, hashtags)["window_end"] == t0 + 30_000, 180, "window t0+30s in Redis")
        assert _history(settings, hashtags, t0 + 10_000) == [("a", 1), ("b", 1)]
        assert _history(settings, hashtags, t0 + 20_000) == [("a", 2), ("b", 1)]
        assert _history(settings, hashtags, t0 + 30_000) == [("a", 2), ("b", 1)]
        assert _history(settings, hashtags, t0 + 40_000) == []  # its end is not passed by the watermark
        posts = current_trending(r, f"posts:{LABEL}")
        assert posts["window_end"] == t0 + 30_000  # [10s, 30s): only the comment (weight 3) on post 1
        assert [(i["item"], i["count"], i["score"]) for i in posts["items"]] == [("1", 1, 540.0)]  # 3/20s per hour
        # [0, 20s): post 2 = share = 5 beats post 1 = like + comment = 4
        assert _history(settings, f"posts:{LABEL}", t0 + 20_000) == [("2", 1), ("1", 2)]

        # phase 2: late but within the allowed lateness -> [10s, 30s) is re-emitted with b = 2
        feed.post(15_000, "b")
        feed.flush()
        _wait(lambda: _history(settings, hashtags, t0 + 30_000) == [("a", 2), ("b", 2)], 60, "late update")
        now = current_trending(r, hashtags)
        assert now["window_end"] == t0 + 30_000
        assert [(i["item"], i["count"]) for i in now["items"]] == [("a", 2), ("b", 2)]
        assert _history(settings, hashtags, t0 + 20_000) == [("a", 2), ("b", 1)]  # expired: not updated

        # phase 3: behind every window's lateness -> side output (dead letter) and counted
        feed.post(5_000, "a")
        feed.flush()
        _wait(lambda: late_counts(r).get(LABEL, 0) == late_before + 1, 60, "late count")
        dead = _consume(settings, feed.late, 3)
        assert len(dead) == 3 and all(k == feed.serde.decode(v).value["source_topic"].encode() for k, v in dead)
        dls = sorted((feed.serde.decode(v).value for _, v in dead), key=lambda d: (d["source_topic"], d["source_offset"]))
        assert [(d["error_type"], d["source_topic"], d["source_offset"]) for d in dls] == sorted([
            ("UnknownUser", feed.engagements, 3), ("UnknownAuthor", feed.posts, 0), ("LateEvent", feed.posts, 8)],
            key=lambda t: (t[1], t[2]))
        assert _history(settings, hashtags, t0 + 20_000) == [("a", 2), ("b", 1)]
    finally:
        client.cancel().result()

    # trending.v1 decodes with confluent-kafka's stock deserializer through the registry
    records = _consume(settings, feed.trending, 8)
    deser = AvroDeserializer(SchemaRegistryClient({"url": settings.registry_url}))
    decoded = [deser(v, SerializationContext(feed.trending, MessageField.VALUE)) for _, v in records]
    assert all(k == d["scope"].encode() for (k, _), d in zip(records, decoded))
    first = decoded[0]
    assert first["scope"] in {hashtags, f"posts:{LABEL}"} and first["rank"] == 1
    assert {d["window_end"] for d in decoded} <= {
        dt.datetime.fromtimestamp((t0 + e) / 1000, dt.UTC) for e in (10_000, 20_000, 30_000)}


@pytest.mark.timeout(420)
def test_restart_from_checkpoint_does_not_double_count(settings: Settings, feed: Feed,
                                                       tmp_path: Path) -> None:
    from topologies.trending.app import latest_checkpoint, start

    _clear_redis(settings)
    chk = tmp_path / "chk"
    config = feed.config()
    client = start(settings, config, checkpoint_dir=chk, checkpoint_interval_ms=1_000, restore=False)
    try:
        feed.post(1_000, "x")
        feed.post(2_000, "x")
        feed.flush()
        produced = time.time()
        # a checkpoint taken well after the events were produced holds them in window state
        _wait(lambda: (p := latest_checkpoint(chk)) and os.path.getmtime(Path(p) / "_metadata") > produced + 5,
              120, "a checkpoint after the first events")
    finally:
        client.cancel().result()
    restored = latest_checkpoint(chk)
    client = start(settings, config, checkpoint_dir=chk, checkpoint_interval_ms=1_000, restore=True)
    try:
        feed.post(12_000, "x")
        feed.post(25_000, "y")  # watermark t0+24999: fires [-10s, 10s) and [0, 20s)
        feed.flush()
        hashtags = f"hashtags:{LABEL}"
        _wait(lambda: _history(settings, hashtags, feed.t0 + 20_000), 180, "window [0, 20s) after restart")
        # 1000 + 2000 (before the restart, from state) + 12000 (after): 3, not 5 (re-read) nor 1 (lost)
        assert _history(settings, hashtags, feed.t0 + 20_000) == [("x", 3)]
        assert _history(settings, hashtags, feed.t0 + 10_000) == [("x", 2)]
    finally:
        client.cancel().result()
    assert restored is not None


@pytest.mark.timeout(420)
def test_a_redelivered_event_counts_once_on_time_and_late(settings: Settings, feed: Feed,
                                                          tmp_path: Path) -> None:
    """Kafka delivers at least once and retries reuse event ids: the same event twice counts once."""
    from topologies.trending.app import start

    _clear_redis(settings)
    client = start(settings, feed.config(), checkpoint_dir=tmp_path / "chk", restore=False)
    hashtags, posts = f"hashtags:{LABEL}", f"posts:{LABEL}"
    try:
        t0 = feed.t0
        post = feed.post(1_000, "d", times=2)  # one post delivered twice
        feed.engage(2_000, "Liked", 7, times=3)  # one like delivered three times
        feed.engage(3_000, "Liked", 7)  # another like (its own event id): counted
        feed.post(4_000, "d")  # another post with the tag: counted
        feed.post(25_000, "z")  # watermark t0+24999: fires [-10s, 10s) and [0, 20s)
        feed.flush()
        _wait(lambda: _history(settings, hashtags, t0 + 20_000), 180, "window [0, 20s)")
        assert _history(settings, hashtags, t0 + 20_000) == [("d", 2)]
        assert _history(settings, posts, t0 + 20_000) == [("7", 2)]
        # late, within the allowed lateness: the duplicate again, then a new event for the same window
        feed.producer.produce(feed.posts, post, b"u1")
        feed.post(16_000, "e")
        feed.flush()
        _wait(lambda: ("e", 1) in _history(settings, hashtags, t0 + 20_000), 60, "late update")
        assert _history(settings, hashtags, t0 + 20_000) == [("d", 2), ("e", 1)]
    finally:
        client.cancel().result()


@pytest.mark.timeout(420)
def test_a_hidden_posts_hashtags_stop_counting_and_count_again_when_a_moderator_overturns(
        settings: Settings, feed: Feed, tmp_path: Path) -> None:
    """Issue 17: a post moderation hides (a model's REMOVE, a moderator's REMOVE) no longer counts for its
    hashtags, in a window not fired yet (on time) and in a fired one (late update); shown again by a
    moderator, it counts again."""
    from stores.trending import current_trending
    from topologies.trending.app import start

    r = _clear_redis(settings)
    client = start(settings, feed.config(), checkpoint_dir=tmp_path / "chk", restore=False)
    hashtags = f"hashtags:{LABEL}"

    def window() -> list[tuple[str, int]]:
        return _history(settings, hashtags, feed.t0 + 20_000)

    try:
        for ts, tag in ((1_000, "spam"), (2_000, "spam"), (3_000, "spam"), (4_000, "ok"), (5_000, "ok")):
            feed.post(ts, tag)
        feed.verdict(1_000, "REMOVE", 1_500)  # the models remove the first spam post before its window fires
        feed.verdict(1_000, "REMOVE", 1_500)  # re-delivered: retracted once
        feed.verdict(4_000, "ALLOW", 4_500)  # a post the models allow: counts
        feed.post(25_000, "z")  # watermark t0+24999: fires [0, 20s)
        feed.flush()
        _wait(window, 180, "window [0, 20s)")
        assert window() == [("ok", 2), ("spam", 2)]  # not spam 3
        # a moderator removes a second spam post after its window fired: a late update re-emits it
        feed.verdict(2_000, "REMOVE", 26_000, moderator=True)
        feed.flush()
        _wait(lambda: window() == [("ok", 2), ("spam", 1)], 60, "the removal's late update")
        assert [(i["item"], i["count"]) for i in current_trending(r, hashtags)["items"]] == [("ok", 2), ("spam", 1)]
        # a moderator overturns the models on the first one: it counts again
        feed.verdict(1_000, "ALLOW", 27_000, moderator=True)
        feed.flush()
        _wait(lambda: window() == [("ok", 2), ("spam", 2)], 60, "the overturn's late update")
        assert [(i["item"], i["count"]) for i in current_trending(r, hashtags)["items"]] == [("ok", 2), ("spam", 2)]
    finally:
        client.cancel().result()
    assert not _consume(settings, feed.late, 1, timeout_s=5)  # corrections are no dead letters


@pytest.mark.timeout(420)
def test_a_hidden_post_leaves_the_posts_ranking_and_comes_back_with_its_full_weight(
        settings: Settings, feed: Feed, tmp_path: Path) -> None:
    """Issue 17, posts: a post moderation hides is left out of the posts top-K (trending.v1, Redis,
    Cassandra), removed before its window fires (on time) or after (late update); a moderator's ALLOW
    brings back all its engagements, those made while it was hidden too; a redelivered verdict changes
    nothing."""
    from stores.trending import current_trending
    from topologies.trending.app import start

    r = _clear_redis(settings)
    client = start(settings, feed.config(), checkpoint_dir=tmp_path / "chk", restore=False)
    posts = f"posts:{LABEL}"
    a, b, c = 1_100, 1_200, 1_300  # post ids (feed.verdict takes the post's ts: id - 1000)

    def window() -> list[tuple[str, int]]:
        return _history(settings, posts, feed.t0 + 20_000)

    def current() -> list[tuple[str, int]]:
        return [(i["item"], i["count"]) for i in current_trending(r, posts)["items"]]

    try:
        # post a has the most engagement in [0, 20s): 1 + 1 + 3 (bucket [0, 10s)) + 5 (bucket [10s, 20s))
        for ts, record, post in ((1_000, "Liked", a), (2_000, "Liked", a), (3_000, "CommentAdded", a),
                                 (4_000, "Liked", b), (5_000, "Liked", b), (6_000, "Liked", c),
                                 (12_000, "Shared", a)):
            feed.engage(ts, record, post)
        feed.verdict(a - 1_000, "REMOVE", 13_000)  # the models remove it before [0, 20s) fires
        feed.verdict(a - 1_000, "REMOVE", 13_000)  # re-delivered: retracted once
        feed.engage(14_000, "Liked", a)  # while hidden: held back
        feed.engage(25_000, "Liked", 9_999)  # watermark t0+24999: fires [0, 20s)
        feed.post(25_000, "z")
        feed.flush()
        _wait(window, 180, "window [0, 20s)")
        assert window() == [(str(b), 2), (str(c), 1)]
        assert str(a) not in [i for i, _ in _history(settings, f"viral-{posts}", feed.t0 + 20_000)]
        # a moderator overturns the models after the window fired: all of a's engagements count (late update)
        feed.verdict(a - 1_000, "ALLOW", 26_000, moderator=True)
        feed.flush()
        _wait(lambda: window() == [(str(a), 5), (str(b), 2), (str(c), 1)], 60, "the overturn's late update")
        assert current() == [(str(a), 5), (str(b), 2), (str(c), 1)]
        # then removes it again: the window is re-published without it
        feed.verdict(a - 1_000, "REMOVE", 27_000, moderator=True)
        feed.flush()
        _wait(lambda: window() == [(str(b), 2), (str(c), 1)], 60, "the removal's late update")
        assert current() == [(str(b), 2), (str(c), 1)]
    finally:
        client.cancel().result()
    assert not _consume(settings, feed.late, 1, timeout_s=5)  # corrections and markers are no dead letters
    # trending.v1: after the moderator's REMOVE no list of [0, 20s) holds post a
    deser = AvroDeserializer(SchemaRegistryClient({"url": settings.registry_url}))
    end = dt.datetime.fromtimestamp((feed.t0 + 20_000) / 1000, dt.UTC)
    lists: list[list[str]] = []
    for _, v in _consume(settings, feed.trending, 200, timeout_s=15):
        d = deser(v, SerializationContext(feed.trending, MessageField.VALUE))
        if d["scope"] == posts and d["window_end"] == end:
            if d["rank"] == 1 or not lists:
                lists.append([])
            lists[-1].append(d["item"])
    # fired without it; the overturn re-adds bucket by bucket; the removal re-publishes per bucket
    # without it (the rank step leaves it out as soon as the marker is in, before the corrections)
    shown, hidden = [str(a), str(b), str(c)], [str(b), str(c)]
    assert lists == [hidden, shown, shown, hidden, hidden]


@pytest.mark.timeout(420)
def test_a_partition_read_far_ahead_does_not_make_another_partitions_events_late(
        settings: Settings, tmp_path: Path) -> None:
    """Issue 16: the watermark is per Kafka partition. A replay from offset 0 reads posts.v1's
    partition 0, far ahead in event time, before partition 1; partition 1's events are on time in
    their own partition's order and must be counted, not dead-lettered as late. (With one watermark
    across the topic's partitions, partition 0 moved it ~100 s ahead and all of partition 1's
    events were too late for every window.) Partition 1 is written once partition 0 has been read:
    a replay's read order between partitions is up to the fetches, this pins the adverse one."""
    from stores.trending import late_counts
    from topologies.trending.app import start

    feed = Feed(settings, post_partitions=2)
    r = _clear_redis(settings)
    late_before = late_counts(r).get(LABEL, 0)
    hashtags = f"hashtags:{LABEL}"
    try:
        t0 = feed.t0
        # partition 0, written before the job starts (read from offset 0): ~100 s ahead of partition 1;
        # then a poison record, whose dead letter shows the job has read partition 0 to its end. The
        # other topics are as far ahead (their watermarks would otherwise hold the job's back)
        for ts in (95_000, 101_000, 102_000):
            feed.post(ts, "ahead", partition=0)
        feed.producer.produce(feed.posts, b"not avro", b"u1", partition=0)
        feed.engage(103_000, "Liked", 1)
        feed.verdict(95_000, "ALLOW", 103_000)
        feed.flush()
        # partition 1 must not turn idle while the test waits (a loaded machine): 2 min, not 30 s
        config = dataclasses.replace(feed.config(), idleness_ms=120_000)
        client = start(settings, config, checkpoint_dir=tmp_path / "chk", restore=False)
        try:
            _wait(lambda: _consume(settings, feed.late, 1, timeout_s=2), 240, "the poison record's dead letter")
            # one watermark across the topic's partitions passes [80s, 100s) now; one per partition
            # waits for partition 1 (not idle for 2 min): partition 1 comes while it waits
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not _history(settings, hashtags, t0 + 100_000):
                time.sleep(0.3)
            # partition 1: on time in its own order, older than partition 0's by far more than ooo (0)
            for ts, tag in ((1_000, "b"), (2_000, "b"), (12_000, "c"), (25_000, "z")):
                feed.post(ts, tag, partition=1)
            feed.flush()
            _wait(lambda: _history(settings, hashtags, t0 + 20_000) or late_counts(r).get(LABEL, 0) > late_before,
                  120, "window [0, 20s) or a late dead letter")
            time.sleep(2)  # let any further dead letters in
            dead = [feed.serde.decode(v).value for _, v in _consume(settings, feed.late, 10, timeout_s=5)]
            assert [(d["error_type"], d["source_partition"], d["source_offset"]) for d in dead] == [
                ("DecodeError", 0, 3)], "partition 1's on-time events were dead-lettered"
            assert late_counts(r).get(LABEL, 0) == late_before
            # partition 1's events counted: [-10s, 10s) and [0, 20s) fired at watermark t0+24999
            assert _history(settings, hashtags, t0 + 10_000) == [("b", 2)]
            assert _history(settings, hashtags, t0 + 20_000) == [("b", 2), ("c", 1)]
        finally:
            client.cancel().result()
    finally:
        feed.close()
