"""Issue #13 defect 4 (counters): after Redis loses the hot counts, reads show Cassandra's totals."""

from __future__ import annotations

from typing import Any

from support.api import api_settings, running_app

from core.events import new_event, post_created
from core.rows import Counts
from serving.auth import mint_token
from stores import cassandra
from stores import posts as post_store
from stores import redis as redis_store
from stores.counters import cached_hot_counts, counts_key, hot_counts, warm_hot_counts
from topologies.engagement.runtime import EngagementProcessor


async def nothing(*_: Any) -> None:
    return None


def stored_post(settings, author: str) -> int:
    """A post stored the way fan-out stores it (content row, author index, caches)."""
    _, v = post_created(author)
    post_store.put_post(cassandra.session(settings), redis_store.client(settings), v, edited=False)
    return int(v["post_id"])


async def test_post_counts_come_from_cassandra_after_the_hot_counts_are_lost(stack) -> None:
    settings = api_settings(stack, api_rate_limit_enabled=False)
    author = "loss-author"
    engaged, quiet = stored_post(stack, author), stored_post(stack, author)
    r = redis_store.async_client(stack)
    proc = EngagementProcessor(cassandra.session(stack), r, nothing, nothing, stack)
    for user in ("a", "b"):
        await proc.handle("Liked", new_event(user, post_id=engaged, post_author_id=author, user_id=user))
    await proc.handle("CommentAdded", new_event("a", post_id=engaged, post_author_id=author, user_id="a",
                                                comment_id=1, text="c", parent_comment_id=None))
    await r.aclose()
    sync = redis_store.client(stack)
    sync.delete(counts_key(engaged), counts_key(quiet))  # Redis lost the hot counts
    with running_app(settings) as client:
        h = {"Authorization": f"Bearer {mint_token('viewer', settings)}"}
        body = client.get(f"/v1/posts/{engaged}", headers=h).json()
        assert body["counts"]["likes"] == 2 and body["counts"]["comments"] == 1, body
        assert body["hydration_partial"] is False
        assert client.get(f"/v1/posts/{quiet}", headers=h).json()["counts"]["likes"] == 0
    # re-warmed from the durable totals, with a TTL (the topology's next write keeps it current)
    assert cached_hot_counts(sync, [engaged, quiet]) == {engaged: Counts(2, 1), quiet: Counts()}
    assert 0 < sync.ttl(counts_key(engaged)) <= 86_400


def test_warming_never_overwrites_counts_the_topology_wrote(stack) -> None:
    r = redis_store.client(stack)
    pid = 1_000_000_000 + 7
    r.delete(counts_key(pid))
    r.hset(counts_key(pid), mapping={"likes": 5, "comments": 0, "shares": 0})  # newer, by the topology
    warm_hot_counts(r, {pid: Counts(likes=1)})  # a reader's older durable read
    assert hot_counts(r, [pid])[pid] == Counts(likes=5) and r.ttl(counts_key(pid)) == -1
    r.delete(counts_key(pid))
