"""Synthetic social workload: a seeded power-law follower graph, write and read mixes, HTTP requests.

Pure and reproducible: the same :class:`WorkloadConfig` (with its ``seed``) yields the same graph
and the same operation streams. Posts are referenced by ``post_ref`` (0 = the newest post the
driver knows about), because post ids are only known once the API has answered.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

WRITE_KINDS = ("post", "follow", "unfollow", "like", "comment", "share", "react")
READ_KINDS = ("feed", "feed_page", "post_view")
REACTIONS = ("LIKE", "LOVE", "HAHA", "WOW", "SAD", "ANGRY")
_WORDS = ("stream", "kafka", "feed", "coffee", "launch", "deploy", "weekend", "music", "game", "photo",
          "sunset", "city", "code", "design", "team", "news", "travel", "food", "match", "book")


@dataclass(frozen=True)
class WorkloadConfig:
    """Sizes, shape and mix of a synthetic social world; every figure is a parameter."""

    users: int = 200
    seed: int = 42
    prefix: str = "u"
    zipf_alpha: float = 1.1            # popularity of rank r is proportional to r ** -alpha
    mean_follows: float = 12.0         # mean out-degree before celebrity edges
    celebrities: int = 3               # the most popular accounts, followed by ``celebrity_reach``
    celebrity_reach: float = 0.6
    hashtags: int = 60
    hashtag_alpha: float = 1.2
    media_prob: float = 0.3
    posts_per_user: float = 5.0        # seed only
    engagements_per_post: float = 2.0  # seed only
    post_ref_alpha: float = 1.0        # engagements favour recent posts: rank r ~ r ** -alpha
    write_mix: Mapping[str, float] = field(default_factory=lambda: {
        "post": 0.25, "follow": 0.05, "unfollow": 0.02, "like": 0.33, "comment": 0.12,
        "share": 0.05, "react": 0.18})
    read_mix: Mapping[str, float] = field(default_factory=lambda: {
        "feed": 0.6, "feed_page": 0.25, "post_view": 0.15})
    feed_limit: int = 20

    def user_id(self, rank: int) -> str:
        """The id of the user with popularity rank ``rank`` (0 = most followed)."""
        return f"{self.prefix}{rank:05d}"


@dataclass(frozen=True)
class Op:
    """One synthetic action by ``actor``: a write or a read."""

    kind: str
    actor: str
    target: str | None = None        # the other user (follow, unfollow)
    post_ref: int | None = None      # 0 = newest known post (engagements, post views)
    body: Mapping[str, Any] | None = None
    pages: int = 1                   # feed_page: how many pages to walk


@dataclass(frozen=True)
class Request:
    """An HTTP request of the public API, made on behalf of ``user`` (the JWT subject)."""

    method: str
    path: str
    user: str
    json: Mapping[str, Any] | None = None
    is_read: bool = False


class _Zipf:
    """Sample ranks 0..n-1 with probability proportional to (rank + 1) ** -alpha."""

    def __init__(self, n: int, alpha: float) -> None:
        self.cum = list(itertools.accumulate((r + 1) ** -alpha for r in range(n)))

    def __call__(self, rng: random.Random) -> int:
        return bisect.bisect_left(self.cum, rng.random() * self.cum[-1])


@dataclass
class Graph:
    """Who follows whom: ``following[u]`` is the set of users ``u`` follows."""

    users: list[str]
    following: dict[str, set[str]]
    celebrities: list[str]

    def followers(self) -> dict[str, set[str]]:
        """The inverse map: followers of each user."""
        out: dict[str, set[str]] = {u: set() for u in self.users}
        for u, fs in self.following.items():
            for f in fs:
                out[f].add(u)
        return out

    def in_degrees(self) -> list[int]:
        """Follower counts in popularity-rank order."""
        fol = self.followers()
        return [len(fol[u]) for u in self.users]

    def edges(self) -> list[tuple[str, str]]:
        """(follower, followee) pairs in a stable order."""
        return [(u, f) for u in self.users for f in sorted(self.following[u])]


def build_graph(cfg: WorkloadConfig) -> Graph:
    """Build the follower graph: Zipf popularity, exponential out-degrees, a few celebrities."""
    rng = random.Random(f"graph:{cfg.seed}")
    users = [cfg.user_id(r) for r in range(cfg.users)]
    pick = _Zipf(cfg.users, cfg.zipf_alpha)
    celebs = users[: cfg.celebrities]
    following: dict[str, set[str]] = {u: set() for u in users}
    for i, u in enumerate(users):
        want = min(cfg.users - 1, max(1, round(rng.expovariate(1 / cfg.mean_follows))))
        tries = 0
        while len(following[u]) < want and tries < want * 20:
            tries += 1
            r = pick(rng)
            if r != i:
                following[u].add(users[r])
        for c in celebs:
            if c != u and rng.random() < cfg.celebrity_reach:
                following[u].add(c)
    return Graph(users, following, celebs)


def post_body(rng: random.Random, cfg: WorkloadConfig, tag_pick: _Zipf, users: Sequence[str]) -> dict[str, Any]:
    """A post: a few words, 1-3 Zipf-popular hashtags, sometimes a mention and media refs."""
    words = [rng.choice(_WORDS) for _ in range(rng.randint(4, 14))]
    tags = sorted({f"#tag{tag_pick(rng)}" for _ in range(rng.randint(1, 3))})
    text = " ".join(words + tags)
    if rng.random() < 0.2:
        text += f" @{rng.choice(users)}"
    body: dict[str, Any] = {"text": text}
    if rng.random() < cfg.media_prob:
        n = rng.randint(1, 3)
        body["media"] = [
            {"kind": "IMAGE", "url": f"https://media.example.com/i/{rng.getrandbits(48):x}.jpg",
             "width": 1080, "height": 1080}
            if rng.random() < 0.8 else
            {"kind": "VIDEO", "url": f"https://media.example.com/v/{rng.getrandbits(48):x}.mp4",
             "width": 1280, "height": 720, "duration_ms": rng.randint(1_000, 60_000)}
            for _ in range(n)]
    if rng.random() < 0.1:
        body["links"] = [f"https://news.example.com/{rng.getrandbits(32):x}"]
    return body


def _weighted(mix: Mapping[str, float], allowed: Sequence[str]) -> tuple[list[str], list[float]]:
    unknown = set(mix) - set(allowed)
    if unknown:
        raise ValueError(f"unknown kinds in mix: {sorted(unknown)}; choose from {list(allowed)}")
    kinds = [k for k in allowed if mix.get(k, 0) > 0]
    if not kinds:
        raise ValueError("the mix has no kind with a positive weight")
    return kinds, list(itertools.accumulate(mix[k] for k in kinds))


class OpStream:
    """Deterministic streams of write and read operations over a graph it keeps up to date."""

    def __init__(self, cfg: WorkloadConfig, graph: Graph, stream: str = "bench") -> None:
        self.cfg = cfg
        self.graph = Graph(list(graph.users), {u: set(f) for u, f in graph.following.items()},
                           list(graph.celebrities))
        self.rng = random.Random(f"{stream}:{cfg.seed}")
        self._popular = _Zipf(cfg.users, cfg.zipf_alpha)
        self._author = _Zipf(cfg.users, cfg.zipf_alpha / 2)  # popular users post a bit more
        self._tags = _Zipf(cfg.hashtags, cfg.hashtag_alpha)
        self._writes = _weighted(cfg.write_mix, WRITE_KINDS)
        self._reads = _weighted(cfg.read_mix, READ_KINDS)

    def _kind(self, table: tuple[list[str], list[float]]) -> str:
        kinds, cum = table
        return kinds[bisect.bisect_left(cum, self.rng.random() * cum[-1])]

    def post_ref(self, known: int) -> int:
        """A Zipf-distributed rank among ``known`` posts (0 = newest)."""
        return _Zipf(max(1, min(known, 1000)), self.cfg.post_ref_alpha)(self.rng) if known > 1 else 0

    def post(self, author: str | None = None) -> Op:
        """A post by ``author`` (or an author drawn by activity)."""
        users = self.graph.users
        author = author or users[self._author(self.rng)]
        return Op("post", author, body=post_body(self.rng, self.cfg, self._tags, users))

    def write(self, known_posts: int) -> Op:
        """The next write; engagements need ``known_posts`` > 0, else a post is made."""
        kind = self._kind(self._writes)
        users = self.graph.users
        actor = self.rng.choice(users)
        if kind == "post" or (known_posts == 0 and kind not in ("follow", "unfollow")):
            return self.post()
        if kind == "unfollow" and self.graph.following[actor]:
            target = self.rng.choice(sorted(self.graph.following[actor]))
            self.graph.following[actor].discard(target)
            return Op("unfollow", actor, target=target)
        if kind in ("follow", "unfollow"):
            target = users[self._popular(self.rng)]
            if target == actor:
                target = users[(users.index(actor) + 1) % len(users)]
            self.graph.following[actor].add(target)
            return Op("follow", actor, target=target)
        ref = self.post_ref(known_posts)
        if kind == "comment":
            return Op("comment", actor, post_ref=ref, body={"text": " ".join(
                self.rng.choice(_WORDS) for _ in range(self.rng.randint(2, 10)))})
        if kind == "share":
            return Op("share", actor, post_ref=ref, body={})
        if kind == "react":
            return Op("react", actor, post_ref=ref, body={"kind": self.rng.choice(REACTIONS)})
        return Op("like", actor, post_ref=ref)

    def read(self, known_posts: int) -> Op:
        """The next read: a feed load, a walk over 2-4 pages, or a post view."""
        kind = self._kind(self._reads)
        actor = self.rng.choice([u for u in self.graph.users if self.graph.following[u]] or self.graph.users)
        if kind == "post_view" and known_posts:
            return Op("post_view", actor, post_ref=self.post_ref(known_posts))
        if kind == "feed_page":
            return Op("feed_page", actor, pages=self.rng.randint(2, 4))
        return Op("feed", actor)


def seed_plan(cfg: WorkloadConfig) -> dict[str, list[Op]]:
    """The demo world as phases of ops: register, follow, post, engage (each phase may run concurrently)."""
    graph = build_graph(cfg)
    stream = OpStream(cfg, graph, stream="seed")
    register = [Op("register", u, body={"user_id": u, "handle": u.replace("-", "_").replace(".", "_")[:30],
                                        "display_name": f"User {u}",
                                        "bio": "celebrity" if u in graph.celebrities else None})
                for u in graph.users]
    follow = [Op("follow", a, target=b) for a, b in graph.edges()]
    n_posts = round(cfg.users * cfg.posts_per_user)
    posts = [stream.post() for _ in range(n_posts)]
    engage = []
    for _ in range(round(n_posts * cfg.engagements_per_post)):
        op = stream.write(n_posts)
        while op.kind not in ("like", "comment", "share", "react"):
            op = stream.write(n_posts)
        engage.append(op)
    return {"register": register, "follow": follow, "post": posts, "engage": engage}


def to_request(op: Op, post_ids: Sequence[int], feed_limit: int = 20) -> Request:
    """Map an op onto the public HTTP API; ``post_ids`` are the known posts, newest last."""
    def post_id() -> int:
        if not post_ids or op.post_ref is None:
            raise ValueError(f"{op.kind} needs a known post")
        return post_ids[-1 - min(op.post_ref, len(post_ids) - 1)]

    a = op.actor
    match op.kind:
        case "register":
            return Request("POST", "/v1/users", a, {k: v for k, v in (op.body or {}).items() if v is not None})
        case "post":
            return Request("POST", "/v1/posts", a, op.body)
        case "follow":
            return Request("PUT", f"/v1/users/{a}/following/{op.target}", a)
        case "unfollow":
            return Request("DELETE", f"/v1/users/{a}/following/{op.target}", a)
        case "like":
            return Request("PUT", f"/v1/posts/{post_id()}/like", a)
        case "comment":
            return Request("POST", f"/v1/posts/{post_id()}/comments", a, op.body)
        case "share":
            return Request("POST", f"/v1/posts/{post_id()}/shares", a, op.body or {})
        case "react":
            return Request("PUT", f"/v1/posts/{post_id()}/reactions/{(op.body or {})['kind']}", a)
        case "feed" | "feed_page":
            return Request("GET", f"/v1/users/{a}/feed?limit={feed_limit}", a, is_read=True)
        case "post_view":
            return Request("GET", f"/v1/posts/{post_id()}", a, is_read=True)
    raise ValueError(f"unknown op kind {op.kind!r}")


# Labelled spam campaigns (issue 17): bursts of near-identical link posts from fresh accounts, follow-spam.
SPAM_DOMAINS = ("cheap-pills.example", "free-coins.example", "win-prize.example", "bit.ly.example")
_SPAM_LINES = ("win a free {thing} now", "cheap {thing} today only", "claim your {thing} before midnight",
               "get rich with {thing} click here", "limited offer on {thing} act fast")
_SPAM_THINGS = ("iphone", "crypto", "giftcard", "pills", "vacation", "coins")


@dataclass(frozen=True)
class SpamCampaign:
    """One campaign: ``accounts`` fresh accounts, each following ``follows`` users (follow-spam) and
    posting a burst of ``posts_each`` near-identical posts linking to ``domain``."""

    name: str
    accounts: int
    posts_each: int
    follows: int
    domain: str
    stuffing: int  # hashtags per post


def spam_campaign(cfg: WorkloadConfig, index: int, accounts: int = 8, posts_each: int = 5,
                  follows: int = 40) -> SpamCampaign:
    """The ``index``-th campaign of a seeded world (domain and hashtag stuffing vary by campaign)."""
    rng = random.Random(f"spam:{cfg.seed}:{index}")
    return SpamCampaign(f"spam{index:03d}", accounts, posts_each, follows,
                        f"{rng.choice(SPAM_DOMAINS).split('.')[0]}-{index}.example", rng.choice((0, 2, 6, 10)))


def spam_post_body(rng: random.Random, campaign: SpamCampaign) -> dict[str, Any]:
    """A near-duplicate campaign post: one template with a word or two varied, a link, stuffed tags."""
    crng = random.Random(campaign.name)  # the campaign's template is fixed; each post varies a little
    line = crng.choice(_SPAM_LINES).format(thing=crng.choice(_SPAM_THINGS))
    words = line.split()
    if rng.random() < 0.5:
        words.insert(rng.randrange(len(words)), rng.choice(("!!", "wow", "hurry", "now")))
    tags = [f"#tag{rng.randrange(60)}" for _ in range(campaign.stuffing)]
    link = f"https://{campaign.domain}/{rng.getrandbits(24):x}"
    return {"text": " ".join([*words, link, *tags]), "links": [link]}


def spam_ops(cfg: WorkloadConfig, campaign: SpamCampaign, users: Sequence[str]) -> dict[str, list[Op]]:
    """The campaign as phases of ops (register, follow, post), every op labelled spam in its account id."""
    rng = random.Random(f"spam-ops:{cfg.seed}:{campaign.name}")
    accounts = [f"{cfg.prefix}-{campaign.name}-{i:03d}" for i in range(campaign.accounts)]
    register = [Op("register", a, body={"user_id": a, "handle": a.replace("-", "_")[:30],
                                        "display_name": f"Deals {i}"}) for i, a in enumerate(accounts)]
    follow = [Op("follow", a, target=t) for a in accounts
              for t in rng.sample(list(users), min(campaign.follows, len(users)))]
    posts = [Op("post", a, body=spam_post_body(rng, campaign)) for _ in range(campaign.posts_each) for a in accounts]
    return {"register": register, "follow": follow, "post": posts}


def is_spam_account(user_id: str) -> bool:
    """The label of a synthetic account: campaign accounts are named ``<prefix>-spamNNN-NNN``."""
    return "-spam" in user_id
