"""The search index on OpenSearch: its mapping, alias-swapped rebuilds, bulk writes, reader filters.

One index behind the alias ``settings.search_alias`` holds two kinds of documents:

- ``p:<post_id>``: a post (text, hashtags as lowercase keywords, author, visibility, created_at,
  popularity bucket); a deleted post is a tombstone (``deleted: true``, no text), never removed, so
  a redelivered older create cannot resurrect it once ``gc_deletes`` has passed;
- ``u:<user_id>``: a profile (handle, display name, bio).

Writes use external versions (:func:`version_of`: event time in ms, shifted left by
:data:`VERSION_SHIFT`), so a replayed or redelivered event older than the document is rejected
(409, counted as stale). Popularity updates are scripted no-ops unless the bucket changes; each
one bumps the version by 1, which the shift leaves room for between two content versions.

Queries are built here from typed inputs only (``match``/``term``/``prefix`` with the user's text
as a value, never as query syntax): :func:`post_query`, :func:`user_query`, :func:`hashtag_query`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from opensearchpy import OpenSearch, helpers
from opensearchpy.exceptions import RequestError

VERSION_SHIFT = 20  # room for 2**20 popularity updates between two content versions of a post

MAPPING: dict[str, Any] = {
    "settings": {
        "number_of_shards": 1, "number_of_replicas": 0, "refresh_interval": "1s",
        "analysis": {
            "normalizer": {"folded": {"type": "custom", "filter": ["lowercase", "asciifolding"]}},
            "analyzer": {
                "text": {"type": "custom", "tokenizer": "standard", "filter": ["lowercase", "asciifolding"]},
                "text_en": {"type": "custom", "tokenizer": "standard",
                            "filter": ["lowercase", "asciifolding", "stop", "porter_stem"]},
            },
        },
    },
    "mappings": {
        "dynamic": "strict",
        "properties": {
            "kind": {"type": "keyword"},
            "post_id": {"type": "long"},
            "author_id": {"type": "keyword"},
            "text": {"type": "text", "analyzer": "text", "fields": {"en": {"type": "text", "analyzer": "text_en"}}},
            "hashtags": {"type": "keyword", "normalizer": "folded"},
            "visibility": {"type": "keyword"},
            "created_at": {"type": "long"},
            "updated_at": {"type": "long"},
            "deleted": {"type": "boolean"},
            "hidden": {"type": "boolean"},  # moderation verdicts (issue 17) set this; readers exclude it
            "popularity": {"type": "integer"},
            "user_id": {"type": "keyword"},
            "handle": {"type": "keyword", "normalizer": "folded",
                       "fields": {"text": {"type": "text", "analyzer": "text"}}},
            "display_name": {"type": "text", "analyzer": "text"},
            "bio": {"type": "text", "analyzer": "text"},
            "engaged": {"type": "keyword", "index": False},  # interest docs: posts liked or commented on
        },
    },
}

INTEREST_CAP = 100  # an interest document keeps the newest posts a user engaged with
INTEREST_SCRIPT = ("def l = ctx._source.engaged; if (l == null) { l = new ArrayList(); ctx._source.engaged = l; } "
                   "int i = l.indexOf(params.pid); "
                   "if (params.add) { if (i >= 0) { ctx.op = 'none'; } else { l.add(params.pid); "
                   "while (l.size() > params.cap) { l.remove(0); } } } "
                   "else { if (i < 0) { ctx.op = 'none'; } else { l.remove(i); } }")
POPULARITY_SCRIPT = ("if (ctx._source.popularity != null && ctx._source.popularity == params.p) "
                     "{ ctx.op = 'none' } else { ctx._source.popularity = params.p }")


def version_of(occurred_at_ms: int) -> int:
    """The external version of a content write at ``occurred_at_ms``."""
    return int(occurred_at_ms) << VERSION_SHIFT


def post_doc_id(post_id: int) -> str:
    return f"p:{post_id}"


def user_doc_id(user_id: str) -> str:
    return f"u:{user_id}"


def interest_doc_id(user_id: str) -> str:
    return f"i:{user_id}"


@dataclass(frozen=True)
class Write:
    """One versioned document write (a post, a tombstone, or a merged profile)."""

    doc_id: str
    version: int
    doc: dict[str, Any]


@dataclass
class BulkStats:
    """What a bulk call did: applied writes, stale ones rejected by version, popularity no-ops."""

    applied: int = 0
    stale: int = 0
    missing: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)


def client(url: str, timeout_s: float = 10.0) -> OpenSearch:
    """A sync client (workers, CLI, tests); the API uses :class:`opensearchpy.AsyncOpenSearch`."""
    return OpenSearch(hosts=[url], timeout=timeout_s, max_retries=2, retry_on_timeout=True, pool_maxsize=8)


def create_index(os_: OpenSearch, alias: str) -> str:
    """Create a fresh, empty index for ``alias`` (named ``<alias>-<ms>``) and return its name."""
    name = f"{alias}-{time.time_ns() // 1_000_000}"
    os_.indices.create(index=name, body=MAPPING)
    return name


def ensure_alias(os_: OpenSearch, alias: str) -> str:
    """The index behind ``alias``, creating ``<alias>-initial`` with the alias if there is none.

    Safe when several workers race: the index and its alias are created in one request under a
    fixed name, so only one creation succeeds and the others find it.
    """
    if not os_.indices.exists_alias(name=alias):
        try:
            os_.indices.create(index=f"{alias}-initial", body={**MAPPING, "aliases": {alias: {}}})
        except RequestError as exc:
            if exc.error != "resource_already_exists_exception":
                raise
    return next(iter(os_.indices.get_alias(name=alias)))


def swap_alias(os_: OpenSearch, alias: str, new_index: str, *, delete_old: bool = True) -> list[str]:
    """Point ``alias`` at ``new_index`` atomically; return (and by default delete) the old indices."""
    old = list(os_.indices.get_alias(name=alias)) if os_.indices.exists_alias(name=alias) else []
    actions = [{"remove": {"index": i, "alias": alias}} for i in old] + [{"add": {"index": new_index, "alias": alias}}]
    os_.indices.update_aliases(body={"actions": actions})
    if delete_old:
        for i in old:
            if i != new_index:
                os_.indices.delete(index=i, ignore_unavailable=True)
    return old


def bulk_actions(index: str, writes: Sequence[Write], popularity: dict[int, int],
                 interests: Sequence[tuple[str, int, bool]] = ()) -> list[dict[str, Any]]:
    """Bulk actions: versioned index ops, scripted popularity updates (no upsert), then interest
    updates ``(user_id, post_id, engaged)`` (upserted; a repeat is a no-op)."""
    acts: list[dict[str, Any]] = [
        {"_op_type": "index", "_index": index, "_id": w.doc_id, "version": w.version,
         "version_type": "external", "_source": w.doc} for w in writes]
    acts += [{"_op_type": "update", "_index": index, "_id": post_doc_id(pid), "retry_on_conflict": 3,
              "script": {"source": POPULARITY_SCRIPT, "lang": "painless", "params": {"p": p}}}
             for pid, p in popularity.items()]
    acts += [{"_op_type": "update", "_index": index, "_id": interest_doc_id(u), "retry_on_conflict": 5,
              "upsert": {"kind": "interest", "user_id": u, "engaged": [str(pid)] if add else []},
              "script": {"source": INTEREST_SCRIPT, "lang": "painless",
                         "params": {"pid": str(pid), "add": add, "cap": INTEREST_CAP}}}
             for u, pid, add in interests]
    return acts


def apply(os_: OpenSearch, index: str, writes: Sequence[Write], popularity: dict[int, int] | None = None,
          interests: Sequence[tuple[str, int, bool]] = (), *, refresh: bool = False) -> BulkStats:
    """Send ``writes``, ``popularity`` and ``interests`` in one bulk call; version conflicts are
    stale, not errors."""
    stats = BulkStats()
    acts = bulk_actions(index, writes, popularity or {}, interests)
    if not acts:
        return stats
    for ok, item in helpers.streaming_bulk(os_, acts, raise_on_error=False, raise_on_exception=True,
                                           refresh=refresh, chunk_size=1000):
        res = next(iter(item.values()))
        status = res.get("status", 0)
        if ok:
            stats.applied += 1
        elif status == 409:
            stats.stale += 1
        elif status == 404:  # popularity of a post not indexed (yet, or ever)
            stats.missing += 1
        else:
            stats.errors.append(res)
    return stats


def get_docs(os_: OpenSearch, index: str, doc_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Current sources of ``doc_ids`` (realtime GET), for merging partial profile updates."""
    ids = sorted(set(doc_ids))
    if not ids:
        return {}
    res = os_.mget(index=index, body={"ids": ids}, realtime=True)
    return {d["_id"]: d["_source"] for d in res["docs"] if d.get("found")}


# ---------------------------------------------------------------- reader filters and queries
@dataclass(frozen=True)
class Reader:
    """What a search must respect for one reader: whom they follow, are friends with, and blocks
    in either direction."""

    user_id: str
    following: frozenset[str] = frozenset()
    friends: frozenset[str] = frozenset()
    blocked: frozenset[str] = frozenset()  # blocked by the reader, or blocking the reader


def post_filter(reader: Reader) -> dict[str, Any]:
    """Posts ``reader`` may see (:func:`core.feed.visible`): live, unhidden, not blocked either way,
    and public, the reader's own, FOLLOWERS of a followee or FRIENDS of a friend."""
    may = [{"term": {"author_id": reader.user_id}}, {"term": {"visibility": "PUBLIC"}}]
    if reader.following:
        may.append({"bool": {"filter": [{"term": {"visibility": "FOLLOWERS"}},
                                        {"terms": {"author_id": sorted(reader.following)}}]}})
    if reader.friends:
        may.append({"bool": {"filter": [{"term": {"visibility": "FRIENDS"}},
                                        {"terms": {"author_id": sorted(reader.friends)}}]}})
    must_not: list[dict[str, Any]] = [{"term": {"deleted": True}}, {"term": {"hidden": True}}]
    if reader.blocked:
        must_not.append({"terms": {"author_id": sorted(reader.blocked)}})
    return {"bool": {"filter": [{"term": {"kind": "post"}}, {"bool": {"should": may, "minimum_should_match": 1}}],
                     "must_not": must_not}}


def user_filter(reader: Reader) -> dict[str, Any]:
    must_not: list[dict[str, Any]] = [{"term": {"deleted": True}}]
    if reader.blocked:
        must_not.append({"terms": {"user_id": sorted(reader.blocked)}})
    return {"bool": {"filter": [{"term": {"kind": "user"}}], "must_not": must_not}}


def split_query(q: str) -> tuple[str, list[str]]:
    """``q``'s free words and its ``#hashtags`` (normalised as the index stores them)."""
    words, tags = [], []
    for tok in q.split():
        if tok.startswith("#") and len(tok) > 1:
            tags.append(tok.lstrip("#").lower())
        else:
            words.append(tok)
    return " ".join(words), tags


MSM = "2<75%"  # up to two words: all must match; more: three in four (longer queries rank, not filter)
POST_SORT = [{"_score": "desc"}, {"created_at": "desc"}, {"post_id": "desc"}]
USER_SORT = [{"_score": "desc"}, {"user_id": "asc"}]


def post_query(q: str, reader: Reader, *, limit: int, after: list[Any] | None = None,
               highlight: bool = True) -> dict[str, Any]:
    """Posts matching the words of ``q`` (all of one or two, 75 % of more: :data:`MSM`) and every
    ``#tag`` as a whole hashtag, visible to ``reader``; BM25 plus log(popularity)."""
    words, tags = split_query(q)
    must: list[dict[str, Any]] = []
    if words:
        must.append({"bool": {"should": [{"match": {"text": {"query": words, "minimum_should_match": MSM}}},
                                         {"match": {"text.en": {"query": words, "minimum_should_match": MSM,
                                                                "boost": 0.5}}}],
                              "minimum_should_match": 1}})
    filters: list[dict[str, Any]] = [post_filter(reader), *({"term": {"hashtags": t}} for t in tags)]
    query: dict[str, Any] = {"bool": {"must": must or [{"match_all": {}}], "filter": filters}}
    query = {"function_score": {"query": query, "boost_mode": "sum", "functions": [
        {"field_value_factor": {"field": "popularity", "modifier": "log1p", "factor": 0.1, "missing": 0}}]}}
    body: dict[str, Any] = {"query": query, "size": limit, "sort": POST_SORT, "track_total_hits": False,
                            "_source": ["post_id", "author_id", "text", "hashtags", "visibility", "created_at",
                                        "popularity"]}
    if highlight and words:
        body["highlight"] = {"encoder": "html", "number_of_fragments": 0,
                             "fields": {"text": {}, "text.en": {}}}
    if after:
        body["search_after"] = after
    return body


def user_query(q: str, reader: Reader, *, limit: int, after: list[Any] | None = None) -> dict[str, Any]:
    """Users whose handle (exact, or a word of it) or display name matches ``q``."""
    text = q.strip().lstrip("@")
    should = [{"term": {"handle": {"value": text, "boost": 5}}},
              {"match": {"handle.text": {"query": text, "boost": 2}}},
              {"match": {"display_name": {"query": text, "operator": "and", "boost": 2}}},
              {"match": {"bio": {"query": text, "operator": "and"}}}]
    body: dict[str, Any] = {
        "query": {"bool": {"should": should, "minimum_should_match": 1, "filter": [user_filter(reader)]}},
        "size": limit, "sort": USER_SORT, "track_total_hits": False,
        "_source": ["user_id", "handle", "display_name", "bio"],
        "highlight": {"encoder": "html", "number_of_fragments": 0, "fields": {"display_name": {}, "bio": {}}}}
    if after:
        body["search_after"] = after
    return body


def literal_regex(text: str) -> str:
    """``text`` as a Lucene regular expression matching exactly it (every non-alphanumeric escaped)."""
    return "".join(ch if ch.isalnum() else "\\" + ch for ch in text)


def hashtag_query(prefix: str, reader: Reader, *, size: int = 50) -> dict[str, Any]:
    """Hashtags starting with ``prefix`` on posts ``reader`` may see, by number of posts."""
    return {"size": 0, "query": {"bool": {"filter": [post_filter(reader), {"prefix": {"hashtags": prefix}}]}},
            "aggs": {"tags": {"terms": {"field": "hashtags", "size": size,
                                        "include": literal_regex(prefix) + ".*"}}}}


def handle_prefix_query(prefix: str, reader: Reader, *, limit: int) -> dict[str, Any]:
    return {"size": limit, "_source": ["user_id", "handle", "display_name"],
            "query": {"bool": {"filter": [user_filter(reader), {"prefix": {"handle": prefix}}]}},
            "sort": [{"handle": "asc"}]}


def hashtag_buckets(res: dict[str, Any], prefix: str, limit: int) -> list[dict[str, Any]]:
    """The aggregation's tags that start with ``prefix`` (a post's other tags are dropped)."""
    out = [{"hashtag": b["key"], "posts": b["doc_count"]}
           for b in res.get("aggregations", {}).get("tags", {}).get("buckets", [])
           if b["key"].startswith(prefix)]
    return out[:limit]


# ---------------------------------------------------------------- the interest feed
def own_posts_query(user_id: str, limit: int = 20) -> dict[str, Any]:
    """The user's newest live posts (ids only): part of their interest profile."""
    return {"size": limit, "_source": False, "sort": [{"created_at": "desc"}],
            "query": {"bool": {"filter": [{"term": {"kind": "post"}}, {"term": {"author_id": user_id}}],
                               "must_not": [{"term": {"deleted": True}}]}}}


def interest_query(reader: Reader, like_ids: Sequence[str], *, since_ms: int, limit: int,
                   exclude_ids: Sequence[str] = ()) -> dict[str, Any]:
    """Recent posts like ``like_ids`` (more_like_this on text and hashtags) by authors ``reader``
    neither is nor follows, filtered as every search is; ties broken by popularity."""
    filters = [post_filter(reader), {"range": {"created_at": {"gte": since_ms}}}]
    not_authors = sorted({reader.user_id, *reader.following})
    mlt = {"more_like_this": {"fields": ["text.en", "hashtags"], "like": [{"_id": i} for i in like_ids],
                              "min_term_freq": 1, "min_doc_freq": 1, "max_query_terms": 40,
                              "minimum_should_match": "1"}}
    query = {"bool": {"must": [mlt], "filter": filters,
                      "must_not": [{"terms": {"author_id": not_authors}}, {"ids": {"values": list(exclude_ids)}}]}}
    return {"size": limit, "track_total_hits": False,
            "_source": ["post_id", "author_id", "text", "hashtags", "visibility", "created_at", "popularity"],
            "query": {"function_score": {"query": query, "boost_mode": "sum", "functions": [
                {"field_value_factor": {"field": "popularity", "modifier": "log1p", "factor": 0.1, "missing": 0}}]}}}


def popular_query(reader: Reader, *, since_ms: int, limit: int) -> dict[str, Any]:
    """The baseline: the most popular recent posts of unfollowed authors the reader may see."""
    not_authors = sorted({reader.user_id, *reader.following})
    return {"size": limit, "track_total_hits": False,
            "_source": ["post_id", "author_id", "text", "hashtags", "visibility", "created_at", "popularity"],
            "sort": [{"popularity": {"order": "desc", "missing": 0}}, {"created_at": "desc"}],
            "query": {"bool": {"filter": [post_filter(reader), {"range": {"created_at": {"gte": since_ms}}}],
                               "must_not": [{"terms": {"author_id": not_authors}}]}}}
