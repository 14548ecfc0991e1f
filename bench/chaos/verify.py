"""The oracle: the topics read from offset 0, replayed, against every view of one chaos run.

Only the run's own users (their id prefix) are checked, so runs can share one platform.

- **log**: every acknowledged event id is in the source topics exactly once; events of the run
  that nobody acknowledged are counted too (a retry that made a second event shows up there);
- **counters**: each post's likes/comments/shares/reactions, recounted from ``engagements.v1`` with
  the engagement topology's own reference semantics (:func:`recount`), against Cassandra's totals
  and the API's ``GET /v1/posts/{id}``;
- **timelines**: each user's whole home feed through the API (chronological, every page) against
  the log: a post must be there when its reader wrote it or followed its author from before it
  was posted until the end (and may see it), and must not be there when it is deleted, its author
  is not followed at the end, or its visibility hides it. Posts of authors followed during the run
  are not required (the follow backfills only the newest few: policy, not loss);
- **profiles**: follower and following counts through the API against the follow edges of the log;
- **comments**: each live post's comment ids through the API against added minus deleted;
- **notifications**: each user's notification ids through the API against a replay of the log
  with the engagement topology's pure functions (:func:`apply`, :func:`graph_notification`);
  engagements on posts deleted later are left out (the topology rejects those it reads after the
  delete, ``post_deleted``, so their notifications depend on arrival order).
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from bench.chaos.load import Ack, LoadStats, send_reliably
from core.clock import millis
from core.feed import visible
from core.rows import Counts, PostState
from core.settings import Settings
from core.workload import Request
from ops.seed import ApiDriver
from streams.serde import Serde
from topologies import replay
from topologies.engagement.logic import apply, graph_notification, recount

SOURCES = ("users.v1", "posts.v1", "graph.v1", "engagements.v1")
VERDICTS = "moderation-verdicts.v1"  # moderation hides LIMIT/REMOVE content from everyone but its author
NOTIFICATIONS = "notifications.v1"
REACTION_KINDS = ("LIKE", "LOVE", "HAHA", "WOW", "SAD", "ANGRY")


@dataclass(frozen=True)
class Rec:
    topic: str
    partition: int
    offset: int
    name: str
    value: dict[str, Any]


def read_log(settings: Settings, topics: Iterable[str], keep: Any) -> list[Rec]:
    """Every record of ``topics`` from the start to the current end for which ``keep(name, value)``,
    in log order per partition (read by the replay's reader, :func:`topologies.replay.read_log`)."""
    recs = replay.read_log(settings, topics, Serde(settings.registry_url), replay.ReplayStats())
    return sorted((Rec(r.topic, r.partition, r.offset, r.name, r.value) for r in recs if keep(r.name, r.value)),
                  key=lambda r: (r.topic, r.partition, r.offset))


@dataclass
class Oracle:
    """The world the log describes."""

    posts: dict[int, dict[str, Any]] = field(default_factory=dict)
    deleted: set[int] = field(default_factory=set)
    follows: dict[tuple[str, str], list[tuple[int, bool]]] = field(default_factory=lambda: defaultdict(list))
    engagements: dict[int, list[Rec]] = field(default_factory=lambda: defaultdict(list))
    notifications: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    causes: dict[str, str] = field(default_factory=dict)  # notification id -> "KIND of post/actor"
    emitted: set[str] = field(default_factory=set)  # notification ids on notifications.v1
    undecided: set[str] = field(default_factory=set)  # caused by engagements on posts deleted later
    moderated: dict[str, bool] = field(default_factory=dict)  # content_key -> hidden (LIMIT/REMOVE) by its last verdict

    def following_now(self, a: str, b: str) -> bool:
        hist = sorted(self.follows.get((a, b), []))
        return bool(hist) and hist[-1][1]

    def followed_since(self, a: str, b: str, t: int) -> bool:
        """``a`` followed ``b`` at time ``t`` and never unfollowed after."""
        hist = sorted(self.follows.get((a, b), []))
        return bool(hist) and all(on for _, on in hist) and hist[0][0] <= t


def build_oracle(log: list[Rec], users: set[str]) -> Oracle:
    o = Oracle()
    for r in log:
        v = r.value
        if r.name == "PostCreated":
            o.posts[int(v["post_id"])] = v
        elif r.name == "PostDeleted":
            o.deleted.add(int(v["post_id"]))
        elif r.name in ("Followed", "Unfollowed"):
            o.follows[(v["follower_id"], v["followee_id"])].append((millis(v["occurred_at"]), r.name == "Followed"))
        elif r.topic == "engagements.v1":
            o.engagements[int(v["post_id"])].append(r)
        elif r.topic == NOTIFICATIONS:
            o.emitted.add(str(v["notification_id"]))
        elif r.topic == VERDICTS:  # keyed by content_key: one partition, log order = verdict order
            o.moderated[str(v["content_key"])] = v["decision"] != "ALLOW"
        if r.topic == "graph.v1" and (n := graph_notification(r.name, v)) and n.recipient_id in users:
            o.notifications[n.recipient_id].add(n.notification_id)
            o.causes[n.notification_id] = f"{n.kind} by {n.actor_id} ({r.topic}[{r.partition}]@{r.offset})"
    for pid, recs in o.engagements.items():  # per post in log (partition) order, as the topology does
        state = PostState(pid)
        for r in recs:
            for n in apply(state, r.name, r.value).notifications:
                if pid in o.deleted:  # order-dependent: applied or rejected (post_deleted) by arrival
                    o.undecided.add(n.notification_id)
                elif n.recipient_id in users:
                    o.notifications[n.recipient_id].add(n.notification_id)
                    o.causes[n.notification_id] = (f"{n.kind} by {n.actor_id} on post {pid} "
                                                   f"({r.topic}[{r.partition}]@{r.offset})")
    return o


def counts_of(doc: dict[str, Any]) -> Counts:
    """Counts from an API post (``counts`` object) or a dict of totals."""
    c = doc.get("counts", doc)
    reactions = c.get("reactions") or {}
    return Counts(int(c.get("likes", 0)), int(c.get("comments", 0)), int(c.get("shares", 0)),
                  {k: int(n) for k, n in reactions.items() if n})


async def _get_all(driver: ApiDriver, user: str, path: str, stats: LoadStats, limit: int = 100) -> list[dict]:
    items: list[dict] = []
    cursor = None
    for _ in range(200):
        q = f"{path}{'&' if '?' in path else '?'}limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        res, _ = await send_reliably(driver, Request("GET", q, user, is_read=True), stats, give_up_s=60)
        if not res.ok:
            raise RuntimeError(f"GET {q} as {user}: {res.status} {str(res.body)[:200]}")
        items += res.body.get("items", [])
        cursor = res.body.get("next_cursor")
        if not cursor:
            return items
    return items


@dataclass
class Verdict:
    """Mismatch counts (0 is right) out of how many were checked, and a few examples."""

    acked: int = 0
    missing_from_log: int = 0
    duplicates: int = 0
    unacked_in_log: int = 0
    counters_checked: int = 0
    counters_wrong_cassandra: int = 0
    counters_wrong_api: int = 0
    feeds_checked: int = 0
    feed_items_missing: int = 0
    feed_items_wrong: int = 0
    profiles_checked: int = 0
    profiles_wrong: int = 0
    comments_checked: int = 0
    comments_wrong: int = 0
    notifications_checked: int = 0
    notifications_missing: int = 0
    notifications_extra: int = 0
    examples: list[str] = field(default_factory=list)
    _per_kind: Counter = field(default_factory=Counter, repr=False)

    def note(self, text: str) -> None:
        """Keep a few examples of each kind of mismatch (the kind is the text's first word)."""
        kind = text.split(" ", 1)[0]
        self._per_kind[kind] += 1
        if self._per_kind[kind] <= 3:
            self.examples.append(text)

    @property
    def view_mismatches(self) -> int:
        return (self.counters_wrong_cassandra + self.counters_wrong_api + self.feed_items_missing
                + self.feed_items_wrong + self.profiles_wrong + self.comments_wrong
                + self.notifications_missing + self.notifications_extra)

    @property
    def ok(self) -> bool:
        return not (self.missing_from_log or self.duplicates or self.unacked_in_log or self.view_mismatches)


def check_log(acks: list[Ack], log: list[Rec], v: Verdict) -> None:
    seen = Counter(str(r.value["event_id"]) for r in log if r.topic in SOURCES)
    acked = {a.event_id for a in acks}
    v.acked = len(acks)
    for a in acks:
        if seen[a.event_id] == 0:
            v.missing_from_log += 1
            v.note(f"acked {a.kind} {a.event_id} by {a.actor} is not in the log")
        elif seen[a.event_id] > 1:
            v.duplicates += 1
            v.note(f"acked {a.kind} {a.event_id} is in the log {seen[a.event_id]} times")
    for r in log:
        if r.topic in SOURCES and str(r.value["event_id"]) not in acked:
            v.unacked_in_log += 1
            v.note(f"{r.name} {r.value['event_id']} at {r.topic}[{r.partition}]@{r.offset} was never acknowledged")


async def check_views(settings: Settings, driver: ApiDriver, users: list[str], o: Oracle, v: Verdict,
                      stats: LoadStats) -> None:
    from stores import cassandra
    from stores.counters import CounterStore

    store = CounterStore(cassandra.session(settings))
    live = [p for p in o.posts if p not in o.deleted]
    sem = asyncio.Semaphore(8)

    async def post(pid: int) -> None:
        author = o.posts[pid]["author_id"]
        want = recount((r.name, r.value) for r in o.engagements.get(pid, []))
        async with sem:
            res, _ = await send_reliably(driver, Request("GET", f"/v1/posts/{pid}", author, is_read=True), stats)
            comments = await _get_all(driver, author, f"/v1/posts/{pid}/comments?thread=0", stats)
        durable = await asyncio.to_thread(store.totals, pid)
        v.counters_checked += 1
        if durable != want:
            v.counters_wrong_cassandra += 1
            v.note(f"post {pid}: Cassandra {durable} != log {want}")
        if not res.ok or counts_of(res.body) != want:
            v.counters_wrong_api += 1
            v.note(f"post {pid}: API {res.status} {res.body.get('counts') if res.ok else res.body} != log {want}")
        ids = {int(c["comment_id"]) for c in comments if not c.get("deleted")}
        ids |= {int(r["comment_id"]) for c in comments for r in c.get("replies", []) if not r.get("deleted")}
        added = {int(r.value["comment_id"]) for r in o.engagements.get(pid, []) if r.name == "CommentAdded"
                 and (r.value["user_id"] == author or not o.moderated.get(f"comment:{r.value['comment_id']}", False))}
        gone = {int(r.value["comment_id"]) for r in o.engagements.get(pid, []) if r.name == "CommentDeleted"}
        v.comments_checked += 1
        if ids != added - gone:
            v.comments_wrong += 1
            v.note(f"post {pid}: comments missing {sorted(added - gone - ids)[:3]} extra {sorted(ids - (added - gone))[:3]}")

    async def user(u: str) -> None:
        async with sem:
            feed = await _get_all(driver, u, f"/v1/users/{u}/feed?algorithm=chronological", stats)
            prof, _ = await send_reliably(driver, Request("GET", f"/v1/users/{u}", u, is_read=True), stats)
            notes = await _get_all(driver, u, f"/v1/users/{u}/notifications", stats)
        got = {int(i["post_id"]) for i in feed}
        v.feeds_checked += 1
        for pid, p in o.posts.items():
            a = p["author_id"]
            may = visible(p["visibility"], is_author=a == u, blocked=False, deleted=pid in o.deleted,
                          follows=o.following_now(u, a), is_friend=False)
            may = may and (a == u or not o.moderated.get(f"post:{pid}", False))
            must = may and (a == u or o.followed_since(u, a, millis(p["occurred_at"])))
            if must and pid not in got:
                v.feed_items_missing += 1
                v.note(f"feed of {u}: post {pid} by {a} missing")
            if pid in got and not (may and (a == u or o.following_now(u, a))):
                v.feed_items_wrong += 1
                v.note(f"feed of {u}: post {pid} by {a} shown (deleted={pid in o.deleted})")
        followers = sum(1 for (a, b) in o.follows if b == u and o.following_now(a, b))
        following = sum(1 for (a, b) in o.follows if a == u and o.following_now(a, b))
        v.profiles_checked += 1
        body = prof.body if prof.ok and isinstance(prof.body, dict) else {}
        have = (body.get("counts", body).get("followers"), body.get("counts", body).get("following"))
        if have != (followers, following):
            v.profiles_wrong += 1
            v.note(f"profile {u}: API {have} != log {(followers, following)}")
        ids = {str(n["notification_id"]) for n in notes} - o.undecided
        want = o.notifications.get(u, set())
        v.notifications_checked += len(want)
        v.notifications_missing += len(want - ids)
        v.notifications_extra += len(ids - want)
        if want != ids:
            lost = want - ids
            v.note(f"notifications of {u}: {len(lost)} missing ({len(lost & o.emitted)} of them on "
                   f"{NOTIFICATIONS}, {len(lost - o.emitted)} never emitted), {len(ids - want)} extra; e.g. "
                   + "; ".join(o.causes.get(n, n) for n in sorted(lost)[:2]))

    await asyncio.gather(*(post(p) for p in live), *(user(u) for u in users))


async def verify(settings: Settings, driver: ApiDriver, users: list[str], stats: LoadStats) -> Verdict:
    """Read the log from offset 0 and check it and every view (see the module doc)."""
    run_users = set(users)

    def keep(name: str, value: dict[str, Any]) -> bool:
        if name == "ModerationVerdict":
            return str(value.get("author_id", "")) in run_users
        return str(value.get("actor_id", "")) in run_users

    log = await asyncio.to_thread(read_log, settings, (*SOURCES, NOTIFICATIONS, VERDICTS), keep)
    v = Verdict()
    check_log(stats.acks, log, v)
    oracle = build_oracle(log, run_users)
    await check_views(settings, driver, users, oracle, v, stats)
    return v
