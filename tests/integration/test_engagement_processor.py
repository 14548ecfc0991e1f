"""EngagementProcessor on real Cassandra and Redis: exact counters, affinity, rejections, notifications."""

from __future__ import annotations

import random
from typing import Any

import pytest

from core.ids import new_id
from core.rows import Counts
from core.settings import Settings, with_overrides
from stores import cassandra
from stores import redis as redis_store
from stores.counters import CounterStore, hot_affinity, hot_counts
from topologies.engagement.logic import Notify, notification_id, recount, window_of
from topologies.engagement.runtime import Engagement, EngagementProcessor


def make_post(settings: Settings, author: str, *, deleted: bool = False) -> int:
    """Insert a post row the way fan-out does (only the columns the engagement check reads)."""
    pid = new_id()
    cassandra.session(settings).execute(
        "INSERT INTO posts (post_id, author_id, text, deleted) VALUES (%s, %s, 'x', %s)",
        (pid, author, deleted))
    return pid


def ev(name: str, post: int, author: str, user: str, ts: int, eid: str, **extra: Any) -> tuple[str, dict]:
    return name, {"event_id": eid, "occurred_at": ts, "actor_id": user, "schema_version": 1,
                  "post_id": post, "post_author_id": author, "user_id": user, **extra}


@pytest.fixture
async def processor(stack: Settings):
    counts: list[tuple[int, dict]] = []
    notes: list[Notify] = []

    async def emit_counts(pid: int, value: dict) -> None:
        counts.append((pid, value))

    async def emit_note(n: Notify) -> None:
        notes.append(n)

    r = redis_store.async_client(stack)
    proc = EngagementProcessor(cassandra.session(stack), r, emit_counts, emit_note, stack)
    yield proc, counts, notes
    await r.aclose()


async def test_counters_equal_recount_with_repeats_and_reordering(stack: Settings, processor) -> None:
    proc, counts, notes = processor
    author, run = "author-" + str(new_id()), str(new_id())
    post = make_post(stack, author)
    rng = random.Random(11)
    base = 1_750_000_000_000
    log = []
    for i in range(120):
        name = rng.choice(["Liked", "Unliked", "ReactionAdded", "ReactionRemoved", "CommentAdded",
                           "CommentDeleted", "Shared"])
        extra: dict[str, Any] = {}
        if name.startswith("Reaction"):
            extra["kind"] = rng.choice(["LOVE", "WOW"])
        if name.startswith("Comment"):
            extra["comment_id"] = rng.randrange(1, 8)
        if name == "CommentAdded":
            extra.update(text="hi", parent_comment_id=None)
        if name == "Shared":
            extra["comment"] = None
        log.append(ev(name, post, author, f"u{rng.randrange(6)}-{run}", base + rng.randrange(5) * 40_000,
                      f"{run}-{i}", **extra))
    delivered = log + rng.sample(log, 40)
    rng.shuffle(delivered)
    for name, e in delivered:
        await proc.handle(name, e)
    expected = recount(log)
    store = CounterStore(cassandra.session(stack))
    assert store.totals(post) == expected
    r = redis_store.client(stack)
    assert hot_counts(r, [post])[post] == expected
    windows = [store.window(post, w) for w in {window_of(e["occurred_at"]) for _, e in log}]
    total = sum((w for w in windows if w is not None), Counts())
    assert total == expected
    last_totals = [v for pid, v in counts if v["window_start"] is None][-1]
    assert (last_totals["likes"], last_totals["comments"]) == (expected.likes, expected.comments)
    assert {n.recipient_id for n in notes} <= {author} | {f"u{i}-{run}" for i in range(6)}


async def test_affinity_follows_standing_engagements(stack: Settings, processor) -> None:
    proc, _, _ = processor
    author, reader = f"a-{new_id()}", f"r-{new_id()}"
    p1, p2 = make_post(stack, author), make_post(stack, author)
    await proc.handle(*ev("Liked", p1, author, reader, 1000, f"{reader}-1"))
    await proc.handle(*ev("Liked", p2, author, reader, 1000, f"{reader}-2"))
    await proc.handle(*ev("Liked", p2, author, reader, 1000, f"{reader}-2"))  # replay
    store = CounterStore(cassandra.session(stack))
    assert store.affinity(reader, author) == 2
    await proc.handle(*ev("Unliked", p1, author, reader, 2000, f"{reader}-3"))
    assert store.affinity(reader, author) == 1
    assert hot_affinity(redis_store.client(stack), reader, [author, "nobody"]) == {author: 1, "nobody": 0}


def post_created(post: int, author: str) -> tuple[str, dict]:
    return "PostCreated", {"event_id": f"pc-{post}", "occurred_at": 1, "actor_id": author,
                           "schema_version": 1, "post_id": post, "author_id": author, "text": "x",
                           "visibility": "PUBLIC"}


async def test_engagement_on_deleted_post_is_rejected_and_on_unknown_post_parked(stack: Settings,
                                                                              processor) -> None:
    proc, counts, _ = processor
    author = f"a-{new_id()}"
    gone = make_post(stack, author, deleted=True)
    missing = new_id() - (3600_000 << 12)  # an hour old and never created
    assert await proc.handle(*ev("Liked", gone, author, "u", 1, f"d-{gone}")) is None
    assert await proc.handle(*ev("Liked", missing, author, "u", 1, f"m-{missing}")) is None
    store = CounterStore(cassandra.session(stack))
    assert [r["reason"] for r in store.rejected(gone)] == ["post_deleted"]
    assert store.rejected(missing) == []  # not rejected for good: parked until the post is known
    assert [(p["record"], p["event_id"]) for p in store.parked(missing)] == [("Liked", f"m-{missing}")]
    assert store.totals(gone) == Counts() == store.totals(missing)
    assert not [c for c in counts if c[0] in (gone, missing)]


async def test_engagement_before_its_post_is_counted_once_the_post_arrives(stack: Settings,
                                                                           processor) -> None:
    """Issue #13 defect 1: a like and a comment whose post is not known yet (fan-out far behind,
    or the PostCreated on another partition not read yet) are parked, not dropped, and counted
    exactly once when the PostCreated is consumed; replays of either side change nothing."""
    proc, counts, notes = processor
    author, post = f"late-{new_id()}", new_id()  # no posts row: fan-out has not got there
    like = ev("Liked", post, author, "fan", 10, f"{post}-like")
    comment = ev("CommentAdded", post, author, "fan2", 20, f"{post}-c", comment_id=1, text="x",
                 parent_comment_id=None)
    assert await proc.handle_batch([Engagement(*like, 0, 5), Engagement(*comment, 0, 6),
                                    Engagement(*like, 0, 7)]) == {post: None}
    store = CounterStore(cassandra.session(stack))
    assert store.totals(post) == Counts() and len(store.parked(post)) == 2
    await proc.register_posts([post_created(post, author)])
    expected = Counts(likes=1, comments=1)
    assert store.totals(post) == expected
    assert hot_counts(redis_store.client(stack), [post])[post] == expected
    assert store.parked(post) == [] and store.rejected(post) == []
    assert store.post_known(post) == (True, False)
    assert sorted(n.kind for n in notes if n.post_id == post) == ["COMMENT", "LIKE"]
    assert [v["likes"] for p, v in counts if p == post and v["window_start"] is None][-1] == 1
    # replays: the posts record again, the engagements again (now applied directly), a late dup
    await proc.register_posts([post_created(post, author)])
    assert await proc.handle(*like) == expected
    await proc.handle_batch([Engagement(*comment), Engagement(*like)])
    assert store.totals(post) == expected and store.parked(post) == []
    unlike = ev("Unliked", post, author, "fan", 30, f"{post}-unlike")
    assert await proc.handle(*unlike) == Counts(comments=1)


async def test_park_that_loses_the_race_to_the_post_is_applied_directly(stack: Settings,
                                                                        processor) -> None:
    """The post registered between the status read and the park: the park's condition fails and
    the engagement is applied at once (nothing left parked, nothing lost)."""
    proc, _, _ = processor
    author, post = f"race-{new_id()}", new_id()
    await proc.register_posts([post_created(post, author)])
    like = Engagement(*ev("Liked", post, author, "u", 10, f"{post}-l"))
    assert await proc._park(post, [like]) == [like]
    store = CounterStore(cassandra.session(stack))
    assert store.parked(post) == []

    async def unknown(*_: object, **__: object) -> str:  # the status read ran before the post
        proc.post_status = real  # type: ignore[method-assign]
        return "unknown"

    real = proc.post_status
    proc.post_status = unknown  # type: ignore[method-assign]
    assert await proc.handle(*ev("Liked", post, author, "u", 10, f"{post}-l")) == Counts(likes=1)
    assert store.parked(post) == [] and store.totals(post) == Counts(likes=1)


async def test_engagement_parked_on_a_post_deleted_later_is_rejected(stack: Settings, processor) -> None:
    proc, _, _ = processor
    author, post = f"del-{new_id()}", new_id()
    await proc.handle(*ev("Liked", post, author, "u", 10, f"{post}-l"))
    await proc.register_posts([post_created(post, author),
                               ("PostDeleted", {**post_created(post, author)[1], "event_id": "d"})])
    store = CounterStore(cassandra.session(stack))
    assert store.totals(post) == Counts() and store.parked(post) == []
    assert [r["reason"] for r in store.rejected(post)] == ["post_deleted"]
    assert store.post_known(post) == (True, True)


async def test_reply_notifies_parent_comment_author(stack: Settings, processor) -> None:
    proc, _, notes = processor
    author = f"a-{new_id()}"
    post = make_post(stack, author)
    await proc.handle(*ev("CommentAdded", post, author, "c1", 10, f"{post}-p", comment_id=1, text="x",
                          parent_comment_id=None))
    await proc.handle(*ev("CommentAdded", post, author, "c2", 20, f"{post}-r", comment_id=2, text="y",
                          parent_comment_id=1))
    mine = sorted((n.kind, n.recipient_id, n.actor_id) for n in notes if n.post_id == post)
    assert mine == [("COMMENT", author, "c1"), ("COMMENT", author, "c2"), ("REPLY", "c1", "c2")]


async def test_batches_equal_recount_and_one_by_one(stack: Settings, processor) -> None:
    """Batches (many posts, > CHUNK events per post, repeats inside a batch) give the recount."""
    proc, counts, notes = processor
    run, rng, base = str(new_id()), random.Random(5), 1_750_000_000_000
    posts = [(make_post(stack, f"ba{i}-{run}"), f"ba{i}-{run}") for i in range(3)]
    log = []
    for i in range(400):
        post, author = rng.choice(posts)
        name = rng.choice(["Liked", "Unliked", "ReactionAdded", "CommentAdded", "CommentDeleted"])
        extra: dict[str, Any] = {}
        if name == "ReactionAdded":
            extra["kind"] = rng.choice(["LOVE", "WOW"])
        if name.startswith("Comment"):
            extra["comment_id"] = rng.randrange(1, 20)
        if name == "CommentAdded":
            extra.update(text="hi", parent_comment_id=rng.choice([None, 1, 2]))
        log.append(ev(name, post, author, f"u{rng.randrange(15)}-{run}",
                      base + rng.randrange(4) * 60_000, f"{run}-{i}", **extra))
    delivered = log + rng.sample(log, 100)
    rng.shuffle(delivered)
    batches = [delivered[i:i + 170] for i in range(0, len(delivered), 170)]
    for b in batches:
        await proc.handle_batch([Engagement(n, e) for n, e in b])
    store = CounterStore(cassandra.session(stack))
    r = redis_store.client(stack)
    for post, _ in posts:
        expected = recount([(n, e) for n, e in log if e["post_id"] == post])
        assert store.totals(post) == expected
        assert hot_counts(r, [post])[post] == expected
        last = [v for pid, v in counts if pid == post and v["window_start"] is None][-1]
        assert (last["likes"], last["comments"], last["reactions"]) == (
            expected.likes, expected.comments, dict(expected.reactions))
    for b in batches:  # replaying every batch changes nothing
        await proc.handle_batch([Engagement(n, e) for n, e in b])
    assert all(store.totals(p) == recount([(n, e) for n, e in log if e["post_id"] == p])
               for p, _ in posts)
    assert len({n.notification_id for n in notes}) == len({n.notification_id for n in notes
                                                         if n.post_id in {p for p, _ in posts}})


async def test_window_rows_expire_with_the_configured_ttl(stack: Settings) -> None:
    async def nothing(*_: Any) -> None:
        return None

    r = redis_store.async_client(stack)
    proc = EngagementProcessor(cassandra.session(stack), r, nothing, nothing,
                               with_overrides(stack, engagement_window_ttl_s=3600))
    author = f"t-{new_id()}"
    post = make_post(stack, author)
    await proc.handle(*ev("Liked", post, author, "u", 120_000, f"ttl-{post}"))
    await r.aclose()
    rows = {x.member: x for x in cassandra.session(stack).execute(
        "SELECT member, TTL(w_likes) AS ttl, TTL(present) AS member_ttl FROM engagement_state "
        "WHERE post_id=%s AND member IN ('w:120000', 'l:u')", (post,))}
    assert rows["l:u"].member_ttl is None  # dedup members are kept for good
    assert 3500 < rows["w:120000"].ttl <= 3600


async def test_one_batch_of_like_unlike_like_and_a_redelivery_equals_recount_and_one_by_one(
        stack: Settings) -> None:
    """Issue 16: the coalesced path (one ``emit_batch`` call per batch) on a batch holding a like,
    an unlike and a like again by the same user of the same post plus a redelivery of the first
    like gives the recount, and the same totals, rows and records as applying the events one by one."""
    batched: list[tuple[list[tuple[int, dict]], list[Notify]]] = []

    async def emit_batch(counts: list[tuple[int, dict]], notes: list[Notify]) -> None:
        batched.append((counts, notes))

    single_counts: list[tuple[int, dict]] = []
    single_notes: list[Notify] = []

    async def emit_counts(pid: int, value: dict) -> None:
        single_counts.append((pid, value))

    async def emit_note(n: Notify) -> None:
        single_notes.append(n)

    r = redis_store.async_client(stack)
    bulk = EngagementProcessor(cassandra.session(stack), r, emit_counts, emit_note, stack,
                               emit_batch=emit_batch)
    one = EngagementProcessor(cassandra.session(stack), r, emit_counts, emit_note, stack)
    run, base = str(new_id()), 1_750_000_000_000
    author = f"lu-{run}"
    a, b = make_post(stack, author), make_post(stack, author)
    store, sync_r = CounterStore(cassandra.session(stack)), redis_store.client(stack)

    def events(post: int) -> list[tuple[str, dict]]:
        like = ev("Liked", post, author, f"x-{run}", base, f"{post}-1")
        return [like, ev("Unliked", post, author, f"x-{run}", base + 1, f"{post}-2"),
                ev("Liked", post, author, f"x-{run}", base + 2, f"{post}-3"), like,
                ev("Liked", post, author, f"y-{run}", base + 3, f"{post}-4")]

    await bulk.handle_batch([Engagement(n, e, 0, i) for i, (n, e) in enumerate(events(a))])
    for i, (n, e) in enumerate(events(b)):
        await one.handle(n, e, 0, i)
    await r.aclose()
    expected = recount(events(a))
    assert expected.likes == 2
    assert store.totals(a) == expected == store.totals(b)
    assert hot_counts(sync_r, [a])[a] == expected == hot_counts(sync_r, [b])[b]
    assert hot_affinity(sync_r, f"x-{run}", [author]) == {author: 2}  # posts a and b
    assert len(batched) == 1 and {pid for pid, _ in single_counts} == {b}
    counts, notes = batched[0]
    assert [pid for pid, _ in counts] == [a, a]  # its one window, then its totals
    assert counts[-1][1]["likes"] == 2 and counts[-1][1]["window_start"] is None
    # each like that won when applied notifies once, as one by one; the redelivery does not
    assert sorted(n.notification_id for n in notes) == sorted(
        notification_id("LIKE", f"{a}-{i}", author) for i in (1, 3, 4))
    assert sorted(n.notification_id for n in single_notes) == sorted(
        notification_id("LIKE", f"{b}-{i}", author) for i in (1, 3, 4))
