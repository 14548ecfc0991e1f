"""Hydration and visibility shared by every post-returning read: content, authors, counts, filters."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, cast

import redis as _redis

from core.feed import visible_to
from serving.feed.engines import ReadEngines, Unavailable
from stores import counters, readside
from stores import posts as post_store
from stores import timelines as tls
from stores import users as users_store
from stores.graph import k_followers, k_friends

PUBLIC_FIELDS = ("post_id", "author_id", "text", "media", "links", "hashtags", "mentions", "visibility",
                 "edited", "created_at", "updated_at")


def cached_posts(r: _redis.Redis, ids: list[int]) -> dict[int, dict[str, Any]]:
    """Posts present in the Redis content cache only."""
    raws = cast(list[bytes | None], r.mget([post_store.k_post(i) for i in ids]))
    return {i: json.loads(raw) for i, raw in zip(ids, raws) if raw}


def posts_via_redis(e: ReadEngines, ids: list[int]) -> tuple[dict[int, dict[str, Any]], bool]:
    """Hydrate ids through the Redis cache and Cassandra; ``(posts, complete)``, cache-only if Cassandra is down."""
    if not ids:
        return {}, True
    got, _ = e.cass(lambda s: post_store.get_posts(s, e.redis, ids), None)
    if got is not None:
        return got, True
    got = cached_posts(e.redis, ids)
    return got, len(got) == len(ids)


def visible_filter(r: _redis.Redis, reader: str, posts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drop deleted posts, hidden/blocked authors, and posts whose visibility excludes ``reader``."""
    kept = cast(list[dict[str, Any]], tls.negative_filter(r, reader, cast(list[Any], posts)))
    private = [p for p in kept if p.get("visibility", "PUBLIC") != "PUBLIC" and p["author_id"] != reader]
    if not private:
        return list(kept)
    pipe = r.pipeline(transaction=False)
    for p in private:
        pipe.sismember(k_followers(p["author_id"]), reader)
        pipe.sismember(k_friends(p["author_id"]), reader)
    flags = pipe.execute()
    allowed = {p["post_id"] for i, p in enumerate(private)
               if visible_to(p["visibility"], is_author=False, follows=bool(flags[2 * i]),
                             is_friend=bool(flags[2 * i + 1]))}
    return [p for p in kept if p not in private or p["post_id"] in allowed]


def counts_dict(c: counters.Counts) -> dict[str, Any]:
    """API form of engagement totals."""
    return {"likes": c.likes, "comments": c.comments, "shares": c.shares, "reactions": dict(c.reactions)}


def enrich(e: ReadEngines, posts: list[dict[str, Any]], *, via_redis: bool,
           reader: str | None = None) -> tuple[list[dict[str, Any]], bool]:
    """API items with author display info and counts (and affinity when ``reader`` is given); ``complete`` flag."""
    ids = [p["post_id"] for p in posts]
    authors = list(dict.fromkeys(p["author_id"] for p in posts))
    complete = True
    affinity: dict[str, int] = {}
    if via_redis:
        got, _ = e.cass(lambda s: users_store.get_users(s, e.redis, authors), None)
        people = got if got is not None else users_store.get_users(None, e.redis, authors)
        complete = got is not None or len(people) == len(authors)
        counts = {k: counts_dict(v) for k, v in counters.hot_counts(e.redis, ids).items()} if ids else {}
        if reader is not None:
            affinity = counters.hot_affinity(e.redis, reader, authors)
    else:
        people, ok1 = e.cass(lambda s: users_store.stored_users(s, authors), {})
        counts, ok2 = e.cass(lambda s: readside.engagement_totals(s, ids), {})
        complete = ok1 and ok2
    items = []
    for p in posts:
        item = {k: p.get(k) for k in PUBLIC_FIELDS}
        item["author"] = users_store.display(people.get(p["author_id"]), p["author_id"])
        item["counts"] = counts.get(p["post_id"])
        if reader is not None:
            item["affinity"] = affinity.get(p["author_id"], 0)
        items.append(item)
    return items, complete


def may_view(e: ReadEngines, viewer: str, post: dict[str, Any]) -> bool:
    """Whether ``viewer`` may see one post (author, visibility, blocks, deletes); Redis, else Cassandra."""
    if post.get("deleted"):
        return False
    author = post["author_id"]
    if author == viewer:
        return True

    def via_redis(r: _redis.Redis) -> bool:
        return bool(visible_filter(r, viewer, [post]))

    verdict, _ = e.red(via_redis, None)
    if verdict is not None:
        return verdict

    def via_cassandra(s: Any) -> bool:
        if readside.edge_exists(s, "blocks", author, viewer) or readside.edge_exists(s, "blocks", viewer, author):
            return False
        return visible_to(post["visibility"], is_author=False,
                          follows=readside.edge_exists(s, "following", viewer, author),
                          is_friend=readside.edge_exists(s, "friends", viewer, author))

    verdict, _ = e.cass(via_cassandra, None)
    if verdict is None:
        raise Unavailable("neither Redis nor Cassandra can check visibility")
    return verdict


def load_posts(e: ReadEngines, ids: Iterable[int]) -> tuple[dict[int, dict[str, Any]], bool]:
    """Hydrate ids via Redis+Cassandra, else Cassandra only; ``(posts, complete)``."""
    ids = list(ids)
    got, _ = e.red(lambda r: posts_via_redis(e, ids), None)
    if got is not None:
        return got
    posts, _ = e.cass(lambda s: post_store.stored_posts(s, ids), None)
    if posts is None:
        raise Unavailable("neither Redis nor Cassandra answers")
    return posts, True


def profiles(e: ReadEngines, ids: list[str]) -> dict[str, dict[str, Any]]:
    """Profiles of ``ids`` via the Redis cache and Cassandra, or whichever engine answers."""
    got, _ = e.red(lambda r: e.cass(lambda s: users_store.get_users(s, r, ids), None)[0]
                   or users_store.get_users(None, r, ids), None)
    if got is not None:
        return got
    got, _ = e.cass(lambda s: users_store.stored_users(s, ids), None)
    if got is None:
        raise Unavailable("neither Redis nor Cassandra answers")
    return got


def profile(e: ReadEngines, user_id: str) -> dict[str, Any] | None:
    """One user's profile, or None if unknown."""
    return profiles(e, [user_id]).get(user_id)
