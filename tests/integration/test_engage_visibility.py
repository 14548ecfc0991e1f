"""The like's visibility check in one async Redis round trip (``may_engage_hot``) decides exactly as
the thread-pool rule (``may_engage``) whenever it decides, and hands over when it cannot."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from support.api import api_settings

from core.settings import isolated
from models.ranking import EngagementRecencyRanker
from serving.feed.engines import ReadEngines
from serving.feed.posts import may_engage, may_engage_hot
from serving.readers.base import Forbidden
from stores import graph, moderation
from stores import posts as post_store
from stores import redis as redis_store

KEYSPACE, DB = "fs_itest_engagevis", 13


@pytest.fixture(scope="module")
def reads(stack) -> Any:
    e = ReadEngines(isolated(api_settings(stack), KEYSPACE, DB), EngagementRecencyRanker())
    e.redis.flushdb()
    yield e
    e.close()


def slow(e: ReadEngines, viewer: str, pid: int, author: str, visibility: str) -> bool:
    try:
        may_engage(e.readers, viewer, pid, author, visibility)
        return True
    except Forbidden:
        return False


def world(r: Any, tag: str) -> dict[str, str]:
    u = {k: f"{k}-{tag}" for k in ("author", "fan", "friend", "stranger", "blocked", "blocker")}
    a = u["author"]
    for name in u.values():
        r.set(graph.k_loaded(name), "1")
    for f in (u["fan"], u["friend"]):
        r.sadd(graph.k_followers(a), f)
        r.sadd(graph.k_following(f), a)
    r.sadd(graph.k_friends(a), u["friend"])
    r.sadd(graph.k_friends(u["friend"]), a)
    r.sadd(graph.k_blocks(a), u["blocked"])
    r.sadd(graph.k_blocks(u["blocker"]), a)
    return u


async def test_the_hot_check_decides_as_the_pool_rule(reads) -> None:
    e = reads
    aredis = redis_store.async_client(e.settings)  # bound to this test's event loop
    u = world(e.redis, uuid.uuid4().hex[:6])
    decided = 0
    for n, vis in enumerate(("PUBLIC", "FOLLOWERS", "FRIENDS")):
        pid = 9_000_000 + 10 * n
        for viewer in ("fan", "friend", "stranger", "blocked", "blocker"):
            hot = await may_engage_hot(aredis, u[viewer], pid, u["author"], vis)
            assert hot is not None
            assert hot == slow(e, u[viewer], pid, u["author"], vis), (vis, viewer)
            decided += 1
    pid = 9_000_100
    e.redis.sadd(post_store.DELETED, str(pid))  # deleted: refused to everyone
    assert await may_engage_hot(aredis, u["fan"], pid, u["author"], "PUBLIC") is False
    assert slow(e, u["fan"], pid, u["author"], "PUBLIC") is False
    pid = 9_000_200
    e.redis.sadd(moderation.HIDDEN, str(pid))  # hidden by moderation: refused to others
    assert await may_engage_hot(aredis, u["fan"], pid, u["author"], "PUBLIC") is False
    assert slow(e, u["fan"], pid, u["author"], "PUBLIC") is False
    assert decided == 15 and await may_engage_hot(aredis, u["stranger"], 1, u["author"], "PUBLIC") is True

    e.redis.delete(graph.k_loaded(u["stranger"]))  # sets not loaded here: the pool rule loads them
    assert await may_engage_hot(aredis, u["stranger"], 1, u["author"], "PUBLIC") is None
    assert await may_engage_hot(aredis, u["fan"], 1, u["author"], None) is None  # no recorded visibility
    await aredis.aclose()
