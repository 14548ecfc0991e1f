"""Read-time merge of followed celebrities' posts, Redis first.

Celebrities are not fanned out; their recent ids live in the capped author cache ``ap:{author}``
that fan-out maintains. One pipelined round trip reads every followed celebrity's page from it;
only a celebrity whose cache is missing (evicted) or was paged past its cap is read from the
Cassandra author index. Visibility is applied after hydration, as for every candidate.
"""

from __future__ import annotations

from collections.abc import Callable

import redis as _redis

from core.feed import merge_newest
from stores import graph
from stores import posts as post_store


def cached_celebrity_pages(r: _redis.Redis, celebs: list[str], before: int | None, want: int,
                           cap: int) -> tuple[list[list[int]], list[str]]:
    """Pages from ``ap:{celeb}``, and the celebrities the cache cannot answer for."""
    if not celebs:
        return [], []
    hi = f"({before}" if before is not None else "+inf"
    p = r.pipeline(transaction=False)
    for c in celebs:
        p.zrevrangebyscore(post_store.k_author(c), hi, "-inf", start=0, num=want)
        p.zcard(post_store.k_author(c))
    res = p.execute()
    pages, deep = [], []
    for c, ids, n in zip(celebs, res[::2], res[1::2]):
        if n == 0 or (len(ids) < want and n >= cap):
            deep.append(c)
        else:
            pages.append([int(x) for x in ids])
    return pages, deep


def celebrity_candidates(r: _redis.Redis, reader: str, before: int | None, want: int, threshold: int,
                         cap: int, from_index: Callable[[str], list[int] | None]) -> tuple[list[int], bool]:
    """Newest ``want`` ids of ``reader``'s followed celebrities below ``before``; ``complete`` is False
    when a celebrity needed the author index and ``from_index`` could not answer (returned None)."""
    celebs = graph.celebrity_followees(r, reader, threshold)
    pages, deep = cached_celebrity_pages(r, celebs, before, want, cap)
    complete = True
    for c in deep:
        page = from_index(c)
        if page is None:
            complete = False
        else:
            pages.append(page)
    return merge_newest(*pages, before=before, limit=want), complete
