"""``GET /v1/search`` and ``GET /v1/search/suggest``: OpenSearch, filtered for the caller like feeds.

The caller's facts (followees, friends, blocks both ways) come from the graph's Redis sets (loaded
from Cassandra first if this Redis lost them) and become the query's filter
(:func:`stores.search.post_filter`): a FOLLOWERS post shows only to followers, FRIENDS only to
friends, nothing of a user blocked either way, no deleted or moderation-hidden post. User text is
only ever a value in ``match``/``term``/``prefix`` clauses. Pages continue with ``search_after``
inside a signed cursor. OpenSearch down or timing out answers 503 with Retry-After.
"""

from __future__ import annotations

import hashlib
import json
import time
from enum import Enum
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request
from opensearchpy import AsyncOpenSearch
from opensearchpy.exceptions import ConnectionError as OSConnectionError
from opensearchpy.exceptions import NotFoundError, TransportError

from core.settings import Settings
from serving.deps import CurrentUser, ReadRateLimited
from serving.errors import READ_LIMITED, read_responses
from serving.feed.engines import ReadEngines, ReadsDep
from serving.payloads import USER_ID_PATTERN
from serving.readers.base import Down, Unavailable
from stores import graph
from stores import search as idx

router = APIRouter(prefix="/search", tags=["search"], dependencies=[ReadRateLimited], responses=READ_LIMITED)
E503 = "OpenSearch (or the graph facts the filter needs) unavailable, retry later (see Retry-After)"


class Kind(str, Enum):
    posts = "posts"
    users = "users"
    hashtags = "hashtags"


def search_client(request: Request) -> AsyncOpenSearch:
    """The app's async OpenSearch client (created on first use, closed with the process)."""
    client = getattr(request.app.state, "opensearch", None)
    if client is None:
        s: Settings = request.app.state.settings
        client = request.app.state.opensearch = AsyncOpenSearch(
            hosts=[s.opensearch_url], timeout=s.search_timeout_s, max_retries=0)
    return client


def reader_facts(e: ReadEngines, user: str) -> idx.Reader:
    """Whom ``user`` follows and is friends with, and who is blocked either way (Redis sets)."""
    try:
        with e.redis_guard.open() as r:
            e.readers.graph.redis._warm(r, [user])
            p = r.pipeline(transaction=False)
            for key in (graph.k_following(user), graph.k_friends(user), graph.k_blocks(user),
                        graph.k_blocked_by(user)):
                p.smembers(key)
            fing, fr, blk, blkby = ({m.decode() if isinstance(m, bytes) else m for m in s} for s in p.execute())
    except Down as exc:
        raise Unavailable(f"graph facts for search: {exc}") from exc
    return idx.Reader(user, frozenset(fing), frozenset(fr), frozenset(blk | blkby))


async def _search(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    s: Settings = request.app.state.settings
    try:
        return await search_client(request).search(index=s.search_alias, body=body)
    except NotFoundError:  # no index yet: nothing was ever indexed
        return {"hits": {"hits": []}, "aggregations": {"tags": {"buckets": []}}}
    except (OSConnectionError, TransportError) as exc:
        status = getattr(exc, "status_code", None)
        if isinstance(exc, OSConnectionError) or not isinstance(status, int) or status >= 500 or status == 429:
            raise HTTPException(503, f"search unavailable, retry later: {type(exc).__name__}",
                                headers={"Retry-After": str(s.api_retry_after_s)}) from exc
        raise


def _scope(kind: Kind, q: str, user: str) -> str:
    return f"search:{kind.value}:{user}:{hashlib.sha256(q.encode()).hexdigest()[:16]}"


def _after(e: ReadEngines, scope: str, cursor: str | None) -> list[Any] | None:
    pos = e.cursor_in(scope, cursor)
    if pos is None:
        return None
    try:
        after = json.loads(pos.before) if isinstance(pos.before, str) else None
    except ValueError:
        after = None
    if not isinstance(after, list) or not after or not all(isinstance(v, (int, float, str)) for v in after):
        raise HTTPException(400, "invalid cursor: not a search position")
    return after


async def _unmoderated(e: ReadEngines, user: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``items`` minus posts moderation hides from everyone but their author (the ``mod:hidden`` set
    the feeds read: a verdict hides at once, before the index learns of it). One SMISMEMBER; with Redis
    down, one read of the durable copy in Cassandra (Unavailable if neither answers)."""
    ids = [int(i["post_id"]) for i in items if i["author_id"] != user]
    if not ids:
        return items
    hidden = await e.run(e.readers.graph.moderated_ids, ids)
    return [i for i in items if i["author_id"] == user or int(i["post_id"]) not in hidden]


def _post_item(hit: dict[str, Any]) -> dict[str, Any]:
    src, hl = hit["_source"], hit.get("highlight", {})
    return {"post_id": src["post_id"], "author_id": src["author_id"], "text": src.get("text", ""),
            "hashtags": src.get("hashtags", []), "visibility": src["visibility"], "created_at": src["created_at"],
            "score": hit.get("_score"),
            "highlight": (hl.get("text") or hl.get("text.en") or [None])[0]}


def _user_item(hit: dict[str, Any]) -> dict[str, Any]:
    src, hl = hit["_source"], hit.get("highlight", {})
    return {"user_id": src["user_id"], "handle": src.get("handle"), "display_name": src.get("display_name"),
            "bio": src.get("bio"), "score": hit.get("_score"),
            "highlight": (hl.get("display_name") or hl.get("bio") or [None])[0]}


Q = Annotated[str, Query(min_length=1, max_length=256, description="words and #hashtags (all must match)")]
Limit = Annotated[int, Query(ge=1, le=50)]
Cursor = Annotated[str | None, Query(max_length=1024, description="next_cursor of the previous page")]


@router.get("", summary="Search posts, users or hashtags the caller may see",
            responses=read_responses(400, 401, 503, e503=E503))
async def search_(request: Request, user: CurrentUser, e: ReadsDep, q: Q,
                  type: Annotated[Kind, Query(description="what to search")] = Kind.posts,
                  limit: Limit = 20, cursor: Cursor = None) -> dict[str, Any]:
    """Posts (every word and ``#tag`` must match; highlighted), users (handle or display name) or
    hashtags (by prefix, with post counts); filtered by visibility, blocks, deletes, moderation."""
    text = q.strip()
    if not text.lstrip("#@"):
        raise HTTPException(422, "q: needs a word, a #hashtag or a handle")
    scope = _scope(type, text, user)
    after = _after(e, scope, cursor)
    reader = await e.run(reader_facts, e, user)
    if type is Kind.hashtags:
        prefix = text.lstrip("#").lower()
        res = await _search(request, idx.hashtag_query(prefix, reader))
        return {"items": idx.hashtag_buckets(res, prefix, limit), "next_cursor": None}
    body = (idx.post_query(text, reader, limit=limit, after=after) if type is Kind.posts
            else idx.user_query(text, reader, limit=limit, after=after))
    hits = (await _search(request, body))["hits"]["hits"]
    items = [(_post_item if type is Kind.posts else _user_item)(h) for h in hits]
    if type is Kind.posts:
        items = await _unmoderated(e, user, items)
    nxt = json.dumps(hits[-1]["sort"]) if len(hits) == limit else None
    return {"items": items, "next_cursor": e.cursor_out(scope, nxt)}


@router.get("/suggest", summary="Complete a handle or a hashtag prefix",
            responses=read_responses(401, 503, e503=E503))
async def suggest(request: Request, user: CurrentUser, e: ReadsDep,
                  prefix: Annotated[str, Query(min_length=1, max_length=64,
                                               description="'#ru' (hashtags), '@an' (handles) or 'an' (both)")],
                  limit: Limit = 10) -> dict[str, Any]:
    """Handles of users not blocked either way, and hashtags of posts the caller may see."""
    bare = prefix.strip().lstrip("#@").lower()
    if not bare:
        raise HTTPException(422, "prefix: needs at least one character after '#' or '@'")
    reader = await e.run(reader_facts, e, user)
    out: dict[str, Any] = {"hashtags": [], "handles": []}
    if not prefix.startswith("@"):
        res = await _search(request, idx.hashtag_query(bare, reader))
        out["hashtags"] = idx.hashtag_buckets(res, bare, limit)
    if not prefix.startswith("#"):
        res = await _search(request, idx.handle_prefix_query(bare, reader, limit=limit))
        out["handles"] = [{"user_id": h["_source"]["user_id"], "handle": h["_source"].get("handle"),
                           "display_name": h["_source"].get("display_name")} for h in res["hits"]["hits"]]
    return out


# ---------------------------------------------------------------- the interest feed
discover_router = APIRouter(prefix="/users/{user_id}", tags=["search"], dependencies=[ReadRateLimited],
                            responses=READ_LIMITED)
DISCOVER_DAYS = 7


@discover_router.get("/discover", summary="Recent posts of unfollowed authors on the caller's interests",
                     responses=read_responses(401, 403, 503, e403="only the user may read their discover feed",
                                              e503=E503))
async def discover(request: Request, user_id: Annotated[str, Path(pattern=USER_ID_PATTERN)], user: CurrentUser,
                   e: ReadsDep, limit: Limit = 20) -> dict[str, Any]:
    """Posts like those the caller liked, commented on or wrote (``more_like_this``), from the last
    7 days, by authors the caller does not follow, filtered as every search is. With no interests
    yet, the most popular such posts (``basis: popular``)."""
    if user_id != user:
        raise HTTPException(403, "only the user may read their discover feed")
    s: Settings = request.app.state.settings
    reader = await e.run(reader_facts, e, user)
    client = search_client(request)
    like = await interest_ids(request, client, s.search_alias, user)
    since = int(time.time() * 1000) - DISCOVER_DAYS * 86_400_000
    if like:
        res = await _search(request, idx.interest_query(reader, like, since_ms=since, limit=limit, exclude_ids=like))
        basis = "interests"
    else:
        res = await _search(request, idx.popular_query(reader, since_ms=since, limit=limit))
        basis = "popular"
    return {"items": await _unmoderated(e, user, [_post_item(h) for h in res["hits"]["hits"]]), "basis": basis}


async def interest_ids(request: Request, client: AsyncOpenSearch, alias: str, user: str) -> list[str]:
    """Document ids of the posts ``user`` engaged with (newest 50) and wrote (newest 20)."""
    try:
        doc = await client.get(index=alias, id=idx.interest_doc_id(user), _source_includes="engaged")
        engaged = [idx.post_doc_id(int(p)) for p in doc["_source"].get("engaged", [])[-50:]]
    except NotFoundError:
        engaged = []
    except (OSConnectionError, TransportError):
        engaged = []  # _search below answers 503 if OpenSearch is down
    own = [h["_id"] for h in (await _search(request, idx.own_posts_query(user)))["hits"]["hits"]]
    return list(dict.fromkeys([*engaged, *own]))
