"""Trending drops a post moderation hides, end to end (issue 17): HTTP posts, likes and a moderator's
decision -> Kafka -> moderation worker -> moderation-verdicts.v1 -> trending job -> ``GET /v1/trending``
(hashtags) and the job's current posts list in Redis (the API would filter a hidden post anyway).

The moderation and trending workers run as subprocesses on their own Redis database (the trending
job on the MiniCluster, its checkpoints in a temporary directory); the API runs in-process. Windows
are 5 min sliding by 10 s here, so the window holding the test's posts stays the current list for
minutes; filler posts (another hashtag) move event time on so windows fire.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from support.api import api_settings

from core.settings import isolated
from ops.workers import workers
from serving.app import create_app
from serving.auth import mint_token
from stores import moderation as mod
from stores import redis as redis_store
from stores.trending import current_trending
from streams.admin import apply_all

pytestmark = pytest.mark.timeout(900)
WINDOW = "5m"
FILLER = "coffee with the team before the match"


def test_a_removed_post_stops_counting_for_its_hashtag_and_counts_again_when_overturned(stack, tmp_path):
    """Hashtags (through the API) and the posts ranking (the job's current list) drop a removed post."""
    apply_all(stack, echo=lambda *_: None)
    s = isolated(stack, "fs_e2e_trending_moderation", 11)
    redis_store.client(s).flushdb()
    settings = api_settings(s, api_rate_limit_enabled=False)
    logs = tmp_path / "workers"
    with workers(s, ("moderation", "trending"), log_dir=logs, topology_group_suffix=f"-e2e-{uuid.uuid4().hex[:8]}",
                 topology_offset_reset="latest", trending_windows=f"{WINDOW}/10s/1m/2s", trending_k=100,
                 trending_checkpoint_dir=str(tmp_path / "chk"), worker_metrics_port=0) as procs, \
            TestClient(create_app(settings)) as client:
        r = redis_store.client(s)

        def h(user: str, *roles: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {mint_token(user, settings, roles=roles)}"}

        def ok(resp: Any, code: int = 202) -> dict[str, Any]:
            assert resp.status_code == code, (resp.status_code, resp.text)
            return resp.json()

        def post(author: str, text: str) -> int:
            return ok(client.post("/v1/posts", json={"text": text}, headers=h(author)))["post_id"]

        author, moderator = f"a{uuid.uuid4().hex[:10]}", f"m{uuid.uuid4().hex[:10]}"
        for u in (author, moderator):
            ok(client.post("/v1/users", json={"user_id": u, "handle": u, "display_name": u}, headers=h(u)))
        last, fillers = [0.0], []
        probe, tag = f"p{uuid.uuid4().hex[:10]}", f"t{uuid.uuid4().hex[:10]}"

        def until(pred: Any, what: str, timeout_s: float) -> Any:
            """Poll ``pred``, posting a filler every second (it moves event time: windows fire)."""
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                assert all(p.poll() is None for p in procs), f"a worker exited; see {logs}"
                if time.monotonic() - last[0] > 1:
                    fillers.append(post(author, f"{FILLER} #{probe}"))
                    last[0] = time.monotonic()
                value = pred()
                if value:
                    return value
                time.sleep(0.2)
            raise AssertionError(f"{what} not within {timeout_s}s; see {logs}")

        def verdict(pid: int) -> dict[str, Any] | None:
            return mod.effective(mod.state(r, f"post:{pid}"))

        def count(item: str) -> tuple[int, int, int] | None:
            """``(count of the hashtag, window start, window end)`` in the current list."""
            body = ok(client.get("/v1/trending", params={"kind": "hashtags", "window": WINDOW, "limit": 100},
                                 headers=h(author)), 200)
            hit = next((i for i in body["items"] if i["item"] == item), None)
            return (hit["count"], body["window_start"], body["window_end"]) if hit else None

        # the workers join: wait until fillers are scored (the moderation worker reads from the latest
        # offset) and counted in trending
        until(lambda: any(verdict(f) for f in fillers[-5:]) and count(probe), "fillers scored and counted", 420)
        t_first = time.time() * 1000
        posts = [post(author, f"{FILLER} #{tag}") for _ in range(3)]
        t_last = time.time() * 1000
        until(lambda: all(verdict(p) for p in posts), "verdicts on the tagged posts", 60)
        assert all(verdict(p)["decision"] == "ALLOW" for p in posts)

        def in_window(n: int) -> Any:  # the current window holds all three posts and counts n of them
            c = count(tag)
            return c and c[1] <= t_first and c[2] > t_last and c[0] == n

        until(lambda: in_window(3), "the three tagged posts counted", 120)
        for u in (author, moderator):  # the first post is liked: it ranks in the posts list
            ok(client.put(f"/v1/posts/{posts[0]}/like", headers=h(u)))

        def liked() -> int | None:
            """The liked post's count in the job's current posts list (Redis: the API filters hidden posts)."""
            hit = [i for i in current_trending(r, f"posts:{WINDOW}", limit=100)["items"] if i["item"] == str(posts[0])]
            return hit[0]["count"] if hit else None

        until(lambda: liked() == 2, "the liked post ranked", 120)
        ok(client.post(f"/v1/moderation/posts/{posts[0]}/decision", json={"decision": "REMOVE", "reason": "spam"},
                       headers=h(moderator, "moderator")))
        until(lambda: in_window(2) and liked() is None, "the removed post no longer counted nor ranked", 120)
        ok(client.post(f"/v1/moderation/posts/{posts[0]}/decision", json={"decision": "ALLOW", "reason": "appeal"},
                       headers=h(moderator, "moderator")))
        until(lambda: in_window(3) and liked() == 2, "the overturned post counted and ranked again", 120)
