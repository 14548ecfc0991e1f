"""User reads: profile with counts, followers/following lists, and a user's own posts (paged)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query

from core.feed import visible_to
from serving.deps import CurrentUser
from serving.feed import hydrate
from serving.feed.engines import ReadEngines, ReadsDep, Unavailable
from serving.payloads import USER_ID_PATTERN
from stores import graph, readside
from stores import timelines as tls
from stores.users import display

router = APIRouter(prefix="/users/{user_id}", tags=["users"])
UserPath = Annotated[str, Path(pattern=USER_ID_PATTERN)]
Limit = Annotated[int, Query(ge=1, le=100)]
Cursor = Annotated[str | None, Query(max_length=512)]


def _known(e: ReadEngines, user_id: str) -> dict[str, Any]:
    prof = hydrate.profile(e, user_id)
    if prof is None:
        raise HTTPException(404, f"no user {user_id}")
    return prof


def profile_view(e: ReadEngines, user_id: str) -> dict[str, Any]:
    """Profile fields plus follower/following/friend counts (Redis, else Cassandra)."""
    prof = _known(e, user_id)
    counts, _ = e.red(lambda r: graph.counts(r, user_id), None)
    if counts is None:
        counts, _ = e.cass(lambda s: readside.counts(s, user_id), None)
    counts = counts or {"followers": 0, "following": 0, "friends": 0}
    return {"user_id": user_id, **{k: prof.get(k) for k in ("handle", "display_name", "bio", "avatar_url",
                                                            "created_at")}, "counts": counts}


@router.get("", summary="A user's profile with follower and following counts")
async def get_profile(user_id: UserPath, user: CurrentUser, e: ReadsDep) -> dict[str, Any]:
    return await e.run(profile_view, e, user_id)


def edges_view(e: ReadEngines, table: str, user_id: str, after: str, limit: int) -> tuple[list[dict], str | None]:
    """A page of ``user_id``'s followers or following (sorted by id) with display info."""
    _known(e, user_id)
    ids, _ = e.cass(lambda s: readside.edge_page(s, table, user_id, after, limit + 1), None)
    if ids is None:
        raise Unavailable("cassandra unavailable: graph lists cannot be read")
    page = ids[:limit]
    people = hydrate.profiles(e, page)
    return [display(people.get(u), u) for u in page], (page[-1] if len(ids) > limit else None)


async def _edges(table: str, user_id: str, e: ReadEngines, limit: int, cursor: str | None) -> dict[str, Any]:
    scope = f"{table}:{user_id}"
    pos = e.cursor_in(scope, cursor)
    if pos is not None and not isinstance(pos.before, str):
        raise HTTPException(400, "invalid cursor: not a list position")
    items, after = await e.run(edges_view, e, table, user_id, pos.before if pos else "", limit)
    return {"items": items, "next_cursor": e.cursor_out(scope, after)}


@router.get("/followers", summary="Who follows the user (paged, by user id)")
async def get_followers(user_id: UserPath, user: CurrentUser, e: ReadsDep, limit: Limit = 50,
                        cursor: Cursor = None) -> dict[str, Any]:
    return await _edges("followers", user_id, e, limit, cursor)


@router.get("/following", summary="Whom the user follows (paged, by user id)")
async def get_following(user_id: UserPath, user: CurrentUser, e: ReadsDep, limit: Limit = 50,
                        cursor: Cursor = None) -> dict[str, Any]:
    return await _edges("following", user_id, e, limit, cursor)


def _relation(e: ReadEngines, viewer: str, author: str) -> tuple[bool, bool, bool]:
    """(blocked either way, viewer follows author, viewer is author's friend)."""
    def via_redis(r: Any) -> tuple[bool, bool, bool]:
        p = r.pipeline(transaction=False)
        p.sismember(graph.k_blocks(author), viewer)
        p.sismember(graph.k_blocks(viewer), author)
        p.sismember(graph.k_followers(author), viewer)
        p.sismember(graph.k_friends(author), viewer)
        b1, b2, f, fr = p.execute()
        return bool(b1 or b2), bool(f), bool(fr)

    rel, _ = e.red(via_redis, None)
    if rel is None:
        rel, _ = e.cass(lambda s: (readside.edge_exists(s, "blocks", author, viewer)
                                   or readside.edge_exists(s, "blocks", viewer, author),
                                   readside.edge_exists(s, "following", viewer, author),
                                   readside.edge_exists(s, "friends", viewer, author)), None)
    if rel is None:
        raise Unavailable("neither Redis nor Cassandra answers")
    return rel


def user_posts_view(e: ReadEngines, viewer: str, author: str, before: int | None, limit: int) -> dict[str, Any]:
    """A page of ``author``'s posts that ``viewer`` may see, newest first."""
    _known(e, author)
    is_author = viewer == author
    blocked, follows, friend = (False, True, True) if is_author else _relation(e, viewer, author)
    if blocked:
        raise HTTPException(403, f"{author} is not visible to {viewer}")
    want = limit + 1
    rows, _ = e.cass(lambda s: tls.author_posts(s, author, before, want), None)
    if rows is None:
        raise Unavailable("cassandra unavailable: the author index cannot be read")
    ids = [pid for pid, vis in rows if visible_to(vis, is_author=is_author, follows=follows, is_friend=friend)]
    posts, _ = hydrate.load_posts(e, ids)
    live = [posts[i] for i in ids if i in posts and not posts[i].get("deleted")][:limit]
    enriched, _ = e.red(lambda r: hydrate.enrich(e, live, via_redis=True), None)
    items, complete = enriched or hydrate.enrich(e, live, via_redis=False)
    nxt = int(live[-1]["post_id"]) if len(rows) == want and live else (rows[-1][0] if len(rows) == want else None)
    return {"items": items, "next_before": nxt, "hydration_partial": not complete}


@router.get("/posts", summary="A user's own posts visible to the caller, newest first")
async def get_user_posts(user_id: UserPath, user: CurrentUser, e: ReadsDep, limit: Limit = 20,
                         cursor: Cursor = None) -> dict[str, Any]:
    scope = f"posts:{user_id}"
    pos = e.cursor_in(scope, cursor)
    if pos is not None and not isinstance(pos.before, int):
        raise HTTPException(400, "invalid cursor: not a posts position")
    out = await e.run(user_posts_view, e, user, user_id, pos.before if pos else None, limit)
    return {"items": out["items"], "next_cursor": e.cursor_out(scope, out["next_before"]),
            "hydration_partial": out["hydration_partial"]}
