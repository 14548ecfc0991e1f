"""Who may see what: the one place the read side applies :mod:`core.feed`'s visibility rules.

The rules are :func:`core.feed.visible` / :func:`core.feed.visible_to`; the facts (blocks, follows,
friendship, hidden authors, deleted posts, posts hidden by moderation) come from the graph readers. Feeds, single posts and a
user's post list all ask :class:`Visibility`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from core.feed import visible, visible_to
from serving.readers.base import Down, Forbidden, Unavailable
from serving.readers.graph import SELF, Graph, Relation

Post = dict[str, Any]


class Visibility:
    """Visibility decisions for one viewer at a time, on facts from Redis first, else Cassandra."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph

    def relation(self, viewer: str, author: str) -> Relation:
        """``viewer``'s relation to ``author`` (an author sees all of their own); Unavailable if unknown."""
        return SELF if viewer == author else self.graph.relation(viewer, author)

    def author_rule(self, viewer: str, author: str) -> Callable[[str], bool]:
        """Which visibilities of ``author``'s posts ``viewer`` may see; Forbidden if blocked either way."""
        rel = self.relation(viewer, author)
        if rel.blocked:
            raise Forbidden(f"{author} is not visible to {viewer}")
        is_author = viewer == author
        return lambda vis: visible_to(vis, is_author=is_author, follows=rel.follows, is_friend=rel.friend)

    def filter_hot(self, viewer: str, posts: list[Post]) -> list[Post]:
        """``posts`` ``viewer`` may see, on Redis facts: deleted and hidden authors dropped, then each
        non-public post of another author checked against follows/friendship. Raises ``Down``."""
        kept = self.graph.redis.unhidden(viewer, posts)
        private = [p for p in kept if p.get("visibility", "PUBLIC") != "PUBLIC" and p["author_id"] != viewer]
        if not private:
            return list(kept)
        facts = self.graph.redis.follows_and_friends(viewer, [p["author_id"] for p in private])
        allowed = {p["post_id"] for p in private
                   if visible_to(p["visibility"], is_author=False, follows=facts[p["author_id"]][0],
                                 is_friend=facts[p["author_id"]][1])}
        return [p for p in kept if p not in private or p["post_id"] in allowed]

    @staticmethod
    def filter_live(posts: list[Post]) -> list[Post]:
        """``posts`` minus deleted ones: the Cassandra feed's filter (its candidates come from the
        viewer's followees' author index, already restricted by :func:`core.feed.visible_to`)."""
        return [p for p in posts if not p.get("deleted")]

    def filter_cold(self, viewer: str, posts: list[Post]) -> list[Post]:
        """The Cassandra feed's filter: :meth:`filter_live`, then other authors' posts moderation hides,
        from the durable copy of the decisions (one ``IN`` read). Raises ``Down`` if Cassandra fails."""
        live = self.filter_live(posts)
        others = [p["post_id"] for p in live if p["author_id"] != viewer]
        hidden = self.graph.cassandra.moderated_ids(others) if others else set()
        return [p for p in live if p["post_id"] not in hidden]

    def without_moderated(self, viewer: str, posts: list[Post]) -> list[Post]:
        """``posts`` minus other authors' posts hidden by moderation (Redis, else Cassandra's durable
        copy; Unavailable if neither answers)."""
        others = [p["post_id"] for p in posts if p["author_id"] != viewer]
        hidden = self.graph.moderated_ids(others)
        return [p for p in posts if p["post_id"] not in hidden]

    def may_view(self, viewer: str, post: Post) -> bool:
        """Whether ``viewer`` may see ``post``: Redis facts as in feeds, else Cassandra's edge tables."""
        if post.get("deleted"):
            return False
        if post["author_id"] == viewer:
            return True
        if self.graph.moderation(post["post_id"]) is not None:  # Redis, else Cassandra's durable copy
            return False  # hidden by moderation: 403 to everyone but the author, as in feeds
        try:  # not filter_hot: the hidden-author set is a feed filter (an unfollowed friend's
            # FRIENDS post stays openable); blocks come from the relation instead
            rel = self.graph.redis.relation(viewer, post["author_id"])
            return visible(post["visibility"], is_author=False, blocked=rel.blocked,
                           deleted=self.graph.redis.is_deleted(post["post_id"]),
                           follows=rel.follows, is_friend=rel.friend)
        except Down:
            pass
        try:
            rel = self.graph.cassandra.relation(viewer, post["author_id"])
        except Down as exc:
            raise Unavailable("neither Redis nor Cassandra can check visibility") from exc
        return visible(post["visibility"], is_author=False, blocked=rel.blocked, deleted=False,
                       follows=rel.follows, is_friend=rel.friend)
