"""Moderation end to end on the real engines (issue 17): HTTP write -> Kafka -> moderation + fan-out -> HTTP read.

Graph, fan-out, users and moderation workers run as subprocesses on their own keyspace, Redis
database and consumer groups (reading from ``latest``); the API runs in-process. Publishing policy
is publish-then-hide: a post is fanned out at once and hidden when its verdict lands.
"""

from __future__ import annotations

import random
import socket
import time
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from support.api import ActingClient, api_settings, uid
from support.wait import poll

from core.settings import Settings, isolated
from core.workload import WorkloadConfig, spam_campaign, spam_post_body
from ops.local import stack as local_stack
from ops.workers import workers
from serving.app import create_app
from serving.auth import mint_token
from stores import graph
from stores import moderation as mod
from stores import redis as redis_store
from streams.admin import apply_all

pytestmark = pytest.mark.timeout(900)
CLEAN = "coffee with the team before the match #weekend"
OFFENSIVE = "you are a fucking idiot and a piece of shit"


class Api(ActingClient):
    def follow(self, a: str, b: str, wait: bool = True) -> None:
        self.ok(self.c.put(f"/v1/users/{a}/following/{b}", headers=self.h(a)))
        if wait:
            poll(lambda: self.r.sismember(graph.k_followers(b), a), f"{a} follows {b}")

    def post(self, author: str, text: str, links: list[str] | None = None) -> int:
        body: dict[str, Any] = {"text": text}
        if links:
            body["links"] = links
        return self.ok(self.c.post("/v1/posts", json=body, headers=self.h(author)))["post_id"]

    def feed_ids(self, user: str) -> set[int]:
        return {it["post_id"] for it in self.ok(self.c.get(f"/v1/users/{user}/feed", params={"limit": 100},
                                                           headers=self.h(user)), 200)["items"]}

    def verdict(self, pid: int) -> dict[str, Any] | None:
        return mod.effective(mod.state(self.r, f"post:{pid}"))

    def wait_verdict(self, pid: int, timeout_s: float = 60) -> dict[str, Any]:
        return poll(lambda: self.verdict(pid), f"verdict on {pid}", timeout_s)

    def decide(self, moderator: str, pid: int, decision: str, reason: str) -> None:
        self.ok(self.c.post(f"/v1/moderation/posts/{pid}/decision", json={"decision": decision, "reason": reason},
                            headers=self.h(moderator, "moderator")))


@pytest.fixture(scope="module")
def world(stack, tmp_path_factory):
    apply_all(stack, echo=lambda *_: None)
    s = isolated(stack, "fs_e2e_moderation", 10)
    redis_store.client(s).flushdb()
    suffix = f"-e2e-{uuid.uuid4().hex[:8]}"
    logs = tmp_path_factory.mktemp("workers")
    settings = api_settings(s, api_rate_limit_enabled=False)
    with workers(s, ("graph", "fanout", "users", "moderation"), log_dir=logs, topology_group_suffix=suffix,
                 topology_offset_reset="latest") as procs, TestClient(create_app(settings)) as client:
        api = Api(client, settings, s)
        probe = api.register(uid("probe"))
        posted: list[int] = []
        sent = [0.0]

        def joined() -> bool:  # post until the moderation worker (reading from latest) scores one
            assert all(p.poll() is None for p in procs), f"a worker exited; see {logs}"
            if time.monotonic() - sent[0] > 3:
                posted.append(api.post(probe, CLEAN))
                sent[0] = time.monotonic()
            return any(api.verdict(p) for p in posted)

        poll(joined, "moderation worker joined", 240)
        yield api


def test_clean_post_untouched_and_offensive_post_limited_then_overturned(world):
    api = world
    author, reader, moderator = api.register(uid("a")), api.register(uid("r")), api.register(uid("m"))
    api.follow(reader, author)
    clean, bad = api.post(author, CLEAN), api.post(author, OFFENSIVE)
    assert api.wait_verdict(clean)["decision"] == "ALLOW"
    limited = api.wait_verdict(bad)
    assert limited["decision"] == "LIMIT" and limited["reasons"] == ["offensive"]
    assert limited["scores"]["offensive"] >= 0.85
    poll(lambda: clean in api.feed_ids(reader), "clean post in the follower's feed")
    assert bad not in api.feed_ids(reader)
    assert api.c.get(f"/v1/posts/{bad}", headers=api.h(reader)).status_code == 403
    own = api.ok(api.c.get(f"/v1/posts/{bad}", headers=api.h(author)), 200)
    assert own["moderation"]["decision"] == "LIMIT" and own["moderation"]["reasons"] == ["offensive"]
    assert "moderation" not in api.ok(api.c.get(f"/v1/posts/{clean}", headers=api.h(author)), 200)
    listed = api.ok(api.c.get(f"/v1/users/{author}/posts", headers=api.h(reader)), 200)["items"]
    assert [it["post_id"] for it in listed] == [clean]  # others' view of the profile drops it too
    # the author appeals once; the appeal queues the post
    api.ok(api.c.post(f"/v1/posts/{bad}/appeal", json={"reason": "quoting a film"}, headers=api.h(author)))
    assert api.c.post(f"/v1/posts/{bad}/appeal", json={"reason": "again"}, headers=api.h(author)).status_code == 409
    # a moderator overturns the verdict: the post reappears in the follower's feed
    api.decide(moderator, bad, "ALLOW", "a film quote, not abuse")
    poll(lambda: bad in api.feed_ids(reader), "overturned post back in the feed")
    st = mod.state(api.r, f"post:{bad}")
    assert st["d"]["by"] == moderator and st["d"]["reason"] == "a film quote, not abuse"
    assert st["m"]["decision"] == "LIMIT"  # the model's verdict is kept beside the override
    assert api.c.get(f"/v1/posts/{bad}", headers=api.h(reader)).status_code == 200


def test_a_post_removed_after_fan_out_disappears_at_once(world):
    api = world
    author, reader, moderator = api.register(uid("a")), api.register(uid("r")), api.register(uid("m"))
    api.follow(reader, author)
    pid = api.post(author, CLEAN + " #later")
    poll(lambda: pid in api.feed_ids(reader), "post fanned out")
    assert api.wait_verdict(pid)["decision"] == "ALLOW"
    api.decide(moderator, pid, "REMOVE", "doxxing")
    poll(lambda: pid not in api.feed_ids(reader), "removed post gone from the feed", 30)
    assert api.r.sismember(mod.HIDDEN, str(pid))
    assert api.c.get(f"/v1/posts/{pid}", headers=api.h(reader)).status_code == 403
    own = api.ok(api.c.get(f"/v1/posts/{pid}", headers=api.h(author)), 200)
    assert own["moderation"]["decision"] == "REMOVE" and own["moderation"]["reason"] == "doxxing"


def test_a_spam_campaign_injected_through_the_api_is_hidden_from_followers(world):
    api = world
    reader = api.register(uid("r"))
    targets = [api.register(uid("t")) for _ in range(30)]
    campaign = spam_campaign(WorkloadConfig(), random.randrange(10_000), accounts=4)
    spammers = [api.register(uid("spam")) for _ in range(campaign.accounts)]
    for sp in spammers:
        api.follow(reader, sp)  # the reader follows them (so their posts are fanned out to her)
        for t in targets:
            api.follow(sp, t, wait=False)  # follow-spam
    poll(lambda: all(api.r.scard(graph.k_following(sp)) == len(targets) for sp in spammers), "follow-spam applied")
    rng = random.Random(7)
    pids = [api.post(sp, **spam_post_body(rng, campaign)) for _ in range(2) for sp in spammers]
    verdicts = [api.wait_verdict(p) for p in pids]
    assert all(v["decision"] == "REMOVE" and v["reasons"] == ["spam"] for v in verdicts), verdicts
    legit = api.register(uid("a"))
    api.follow(reader, legit)
    ok = api.post(legit, CLEAN)
    poll(lambda: ok in api.feed_ids(reader), "a legitimate post beside the campaign")
    assert not set(pids) & api.feed_ids(reader)


def test_a_report_queues_the_post_and_non_moderators_are_refused(world):
    api = world
    author, reporter, moderator = api.register(uid("a")), api.register(uid("u")), api.register(uid("m"))
    pid = api.post(author, CLEAN + " #reported")
    api.wait_verdict(pid)
    api.ok(api.c.post(f"/v1/posts/{pid}/reports", json={"reason": "spam"}, headers=api.h(reporter)))

    def queued() -> dict[str, Any] | None:
        body = api.ok(api.c.get("/v1/moderation/queue", params={"limit": 100}, headers=api.h(moderator, "moderator")),
                      200)
        return next((it for it in body["items"] if it["content_key"] == f"post:{pid}"), None)

    item = poll(queued, "reported post in the review queue")
    assert item["reports"] == 1 and item["author_id"] == author and item["model"]["decision"] == "ALLOW"
    assert "spam" in item["model"]["scores"] and item["text"].startswith("coffee")
    assert api.c.get("/v1/moderation/queue", headers=api.h(reporter)).status_code == 403
    r = api.c.post(f"/v1/moderation/posts/{pid}/decision", json={"decision": "REMOVE", "reason": "x"},
                   headers=api.h(reporter))
    assert r.status_code == 403


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_with_redis_down_hidden_content_stays_hidden_from_all_but_its_author(world, tmp_path):
    """Issue 17: the read API's Redis-down fallback (Cassandra) filters on the moderation worker's durable
    copy of the decisions: a removed post is out of a follower's feed and 403 on GET, a hidden comment is
    out of the page, and both are still there for their authors."""
    api = world
    author, reader, moderator = api.register(uid("a")), api.register(uid("r")), api.register(uid("m"))
    commenter = api.register(uid("c"))
    api.follow(reader, author)
    kept, removed = api.post(author, CLEAN + " #kept"), api.post(author, CLEAN + " #removed")
    poll(lambda: {kept, removed} <= api.feed_ids(reader), "posts fanned out")
    assert api.wait_verdict(removed)["decision"] == "ALLOW"
    api.decide(moderator, removed, "REMOVE", "doxxing")
    poll(lambda: removed not in api.feed_ids(reader), "removed post gone from the feed (Redis up)", 30)
    bad = api.ok(api.c.post(f"/v1/posts/{kept}/comments", json={"text": OFFENSIVE}, headers=api.h(commenter)))
    fine = api.ok(api.c.post(f"/v1/posts/{kept}/comments", json={"text": "nice one"}, headers=api.h(commenter)))
    poll(lambda: api.r.sismember(mod.HIDDEN_COMMENTS, str(bad["comment_id"])), "offensive comment hidden")
    poll(lambda: len(api.ok(api.c.get(f"/v1/posts/{kept}/comments", headers=api.h(commenter)), 200)["items"]) == 2,
         "comments stored")
    own = Settings(state_dir=tmp_path / "redis", redis_port=_free_port(), env="test")
    local_stack.up(own, ["redis"], echo=lambda *_: None)
    try:
        settings = api.settings.model_copy(update={"redis_url_override": own.redis_url})
        with TestClient(create_app(settings)) as client:
            local_stack.down(own, ["redis"], echo=lambda *_: None)

            def h(user: str) -> dict[str, str]:
                return {"Authorization": f"Bearer {mint_token(user, settings)}"}

            res = client.get(f"/v1/users/{reader}/feed", params={"limit": 100}, headers=h(reader))
            assert res.status_code == 200, res.text
            body = res.json()
            assert body["degraded"]["source"] == "cassandra"
            assert [it["post_id"] for it in body["items"]] == [kept]
            assert client.get(f"/v1/posts/{removed}", headers=h(reader)).status_code == 403
            assert client.get(f"/v1/posts/{kept}", headers=h(reader)).status_code == 200
            mine = client.get(f"/v1/posts/{removed}", headers=h(author))
            assert mine.status_code == 200, mine.text
            assert mine.json()["moderation"]["decision"] == "REMOVE" and mine.json()["moderation"]["reason"] == "doxxing"
            listed = client.get(f"/v1/users/{author}/posts", headers=h(reader))
            assert listed.status_code == 200 and [it["post_id"] for it in listed.json()["items"]] == [kept]
            seen = client.get(f"/v1/posts/{kept}/comments", headers=h(reader))
            assert seen.status_code == 200, seen.text
            assert [c["comment_id"] for c in seen.json()["items"]] == [fine["comment_id"]]
            theirs = client.get(f"/v1/posts/{kept}/comments", headers=h(commenter)).json()["items"]
            assert {c["comment_id"] for c in theirs} == {bad["comment_id"], fine["comment_id"]}
    finally:
        local_stack.down(own, ["redis"], echo=lambda *_: None)


def test_a_lost_redis_gets_every_verdict_and_decision_back_from_the_log(world):
    """Redis runs without persistence: after a loss the moderation worker reloads the hidden set, the
    model verdicts and the moderators' decisions from the log, with no new traffic (last: it wipes
    this module's Redis database)."""
    api = world
    author, reader, moderator = api.register(uid("a")), api.register(uid("r")), api.register(uid("m"))
    bad, removed, overturned = api.post(author, OFFENSIVE), api.post(author, CLEAN), api.post(author, OFFENSIVE)
    for pid in (bad, removed, overturned):
        api.wait_verdict(pid)
    api.decide(moderator, removed, "REMOVE", "doxxing")
    api.decide(moderator, overturned, "ALLOW", "a film quote")
    poll(lambda: api.r.sismember(mod.HIDDEN, str(removed)) and not api.r.sismember(mod.HIDDEN, str(overturned)),
         "decisions applied")
    before = {p: api.verdict(p) for p in (bad, removed, overturned)}
    assert api.r.exists(mod.LOADED)
    api.r.flushdb()  # the loss
    poll(lambda: api.r.exists(mod.LOADED), "the worker noticed and reloaded", 120)
    hidden = {p for p in (bad, removed, overturned) if api.r.sismember(mod.HIDDEN, str(p))}
    assert hidden == {bad, removed}
    after = {p: api.verdict(p) for p in (bad, removed, overturned)}
    assert [after[p]["decision"] for p in (bad, removed, overturned)] == ["LIMIT", "REMOVE", "ALLOW"]
    assert after[removed]["reason"] == "doxxing" and after[bad]["reasons"] == before[bad]["reasons"] == ["offensive"]
    assert api.c.get(f"/v1/posts/{removed}", headers=api.h(reader)).status_code == 403
