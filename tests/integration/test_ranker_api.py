"""The read API ranks ``algorithm=ranked`` feeds with the LightGBM ranker on the real stack.

Reuses the read API e2e world (workers + in-process API on the real engines) from
tests/e2e/test_read_api.py: its ``world`` fixture and ``Api``/``poll``/``uid`` helpers.
"""

from __future__ import annotations

import importlib.util
import math
import sys

import pytest

from core.settings import REPO_ROOT
from models.features import FEATURE_NAMES
from models.ranker import LightGBMRanker, read_manifest


def _e2e_module():
    name = "feedstream_e2e_read_api"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "tests" / "e2e" / "test_read_api.py")
        assert spec and spec.loader
        sys.modules[name] = module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return sys.modules[name]


_e2e = _e2e_module()
world = _e2e.world  # the fixture itself, so pytest provides it here too
poll, uid = _e2e.poll, _e2e.uid
pytestmark = pytest.mark.timeout(900)


def test_ranked_feed_is_ordered_by_the_lightgbm_ranker(world):
    api, _s, app = world
    reads = app.state.reads
    assert isinstance(reads.ranker, LightGBMRanker), "FEEDSTREAM_RANKER unset (auto) picks LightGBM"
    name = f"lightgbm-{read_manifest()['version']}"
    author, other, reader = api.register(uid("a")), api.register(uid("o")), api.register(uid("r"))
    likers = [api.register(uid("l")) for _ in range(3)]
    api.follow(reader, author)
    api.follow(reader, other)
    for u in likers[:2]:
        api.follow(u, author)
    poll(lambda: api.ok(api.c.get(f"/v1/users/{author}", headers=api.h(reader)), 200)["counts"]["followers"] == 3,
         "follows applied")
    pids = [api.post(author, "plain"), api.post(other, "a longer post with #tags #ranking and some words"),
            api.post(author, "popular one")]
    for p in pids:
        api.wait_in_feed(reader, p)
    for u in likers:
        api.ok(api.c.put(f"/v1/posts/{pids[2]}/like", headers=api.h(u)))
    poll(lambda: api.ok(api.c.get(f"/v1/posts/{pids[2]}", headers=api.h(reader)), 200)["counts"]["likes"] == 3,
         "3 likes counted")

    body = api.ok(api.feed(reader, algorithm="ranked"), 200)
    assert body["ranking"] == {"requested": "ranked", "applied": "ranked", "ranker": name,
                               "fallback": False, "reason": None}
    got = [it["post_id"] for it in body["items"]]
    assert sorted(got) == sorted(pids) and api.feed_ids(reader) == sorted(pids, reverse=True)

    # the ranker read author context from the real Redis graph: follower counts and friendship
    x = reads.ranker.features(reader, body["items"])
    col = {n: i for i, n in enumerate(FEATURE_NAMES)}
    by_pid = {it["post_id"]: row for it, row in zip(body["items"], x)}
    assert by_pid[pids[0]][col["author_followers_log"]] == pytest.approx(math.log1p(3))
    assert by_pid[pids[1]][col["author_followers_log"]] == pytest.approx(math.log1p(1))
    assert by_pid[pids[2]][col["likes"]] == 3 and by_pid[pids[1]][col["is_friend"]] == 0.0
    # and the response's order is the model's order of those scores (ties newest first)
    scores = reads.ranker.scores(reader, [{**it, "affinity": 0} for it in body["items"]])  # as served
    expect = [p for _, p in sorted(zip(scores, got), key=lambda t: (-t[0], -t[1]))]
    assert got == expect
