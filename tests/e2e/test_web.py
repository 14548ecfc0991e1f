"""The web app in a real browser (issue 22): Debian's Chromium driven by playwright-core (Node), on the real stack.

One module fixture: graph, fan-out, engagement, users and moderation workers on their own keyspace and
Redis database (reading from ``latest``), the API on a real uvicorn server (the browser needs HTTP and
WebSocket), seed data through the API, then one Node process (``tests/e2e/web/run.mjs``, one browser)
plays every scenario and reports a JSON verdict per check; each test below asserts one of them.
Screenshots land in ``tests/e2e/web/artifacts/`` (gitignored).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from support.api import api_settings

from core.settings import isolated
from ops.workers import workers
from serving.app import create_app
from serving.auth import mint_token
from stores import graph, progress
from stores import moderation as mod
from stores import redis as redis_store
from streams.admin import apply_all

# In `make test` again since 2026-12-03. It had been off (issue #22): in ~1 run of 5 bob's "new post" banner never
# showed. The cause was the API's realtime hub: two browsers opening their WebSockets together each made
# redis-py's PubSub open its own connection, and the channel subscribed on the losing one was never read
# (tests/integration/test_realtime_hub.py reproduces it: 6 of 8 simultaneous subscribers lost). Fixed in
# serving/realtime.py. FEEDSTREAM_WEB_E2E=0 skips it (e.g. where Chromium cannot be installed).
pytestmark = [pytest.mark.timeout(900),
              pytest.mark.skipif(os.environ.get("FEEDSTREAM_WEB_E2E") == "0",
                                 reason="FEEDSTREAM_WEB_E2E=0 skips the browser e2e")]
WEB = Path(__file__).resolve().parent / "web"
ARTIFACTS = WEB / "artifacts"
CHROMIUM = "/usr/bin/chromium"
TOPOLOGIES = ("graph", "fanout", "engagement", "users", "moderation", "media")
SCROLL_POSTS = 45  # by one author: three feed pages of 20


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def poll(fn: Any, what: str, timeout_s: float = 60.0) -> Any:
    deadline, value = time.monotonic() + timeout_s, None
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what} not within {timeout_s}s (last {value!r})")


class Client:
    def __init__(self, base: str, settings: Any) -> None:
        self.http, self.settings = httpx.Client(base_url=base, timeout=60), settings

    def token(self, user: str, *roles: str) -> str:
        return mint_token(user, self.settings, roles=roles)

    def call(self, method: str, path: str, user: str, code: int = 202, **kw: Any) -> Any:
        r = self.http.request(method, path, headers={"Authorization": f"Bearer {self.token(user)}"}, **kw)
        assert r.status_code == code, (method, path, r.status_code, r.text)
        return r.json()

    def register(self, tag: str) -> str:
        user = f"{tag}{uuid.uuid4().hex[:8]}"
        self.call("POST", "/v1/users", user, json={"user_id": user, "handle": user, "display_name": tag.title()})
        return user

    def feed_len(self, user: str) -> int:
        return len(self.call("GET", f"/v1/users/{user}/feed", user, 200, params={"limit": 100})["items"])


@pytest.fixture(scope="module")
def verdict(media_stack, tmp_path_factory) -> dict[str, Any]:
    stack = media_stack
    if not Path(CHROMIUM).exists() or shutil.which("node") is None:
        pytest.fail(f"{CHROMIUM} or node missing: run `make bootstrap` (apt chromium, npm ci in {WEB})")
    if not (WEB / "node_modules" / "playwright-core").is_dir():
        pytest.fail(f"playwright-core missing: run `npm ci` in {WEB} (make bootstrap does)")
    apply_all(stack, echo=lambda *_: None)
    s = isolated(stack, "fs_e2e_web", 13)
    r = redis_store.client(s)
    r.flushdb()
    settings = api_settings(s, api_rate_limit_enabled=False)
    port = _free_port()
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    logs = tmp_path_factory.mktemp("web-workers")
    thread.start()  # the API starts while the workers do (both take a while on a loaded machine)
    with workers(s, TOPOLOGIES, log_dir=logs, topology_group_suffix=f"-web-{uuid.uuid4().hex[:8]}",
                 topology_offset_reset="latest") as procs:
        try:
            poll(lambda: server.started or not thread.is_alive(), "uvicorn started", 240)
            assert server.started, "the API did not start (its lifespan failed: see the log above)"
            api = Client(f"http://127.0.0.1:{port}", settings)
            probe, probe2 = api.register("probe"), api.register("probe")
            sent, probes = [0.0], []

            def joined() -> bool:  # write until every worker (reading from latest) has applied something
                assert all(p.poll() is None for p in procs), f"a worker exited; see {logs}"
                if time.monotonic() - sent[0] > 3:
                    sent[0] = time.monotonic()
                    try:  # a loaded machine may be slow to answer the first writes: try again later
                        api.call("PUT", f"/v1/users/{probe2}/following/{probe}", probe2)
                        pid = api.call("POST", "/v1/posts", probe, json={"text": "warming up #web"})["post_id"]
                        probes.append(pid)
                        api.call("PUT", f"/v1/posts/{pid}/like", probe2)
                    except httpx.TimeoutException:
                        return False
                marked = all(r.exists(progress.key(t)) for t in TOPOLOGIES if t not in ("moderation", "media"))
                return marked and any(mod.effective(mod.state(r, f"post:{p}")) for p in probes)

            poll(joined, "all workers joined", 300)
            alice, bob, carol, dave, moderator = (api.register(t) for t in ("alice", "bob", "carol", "dave", "mod"))
            for followee in (alice, carol, dave):
                api.call("PUT", f"/v1/users/{bob}/following/{followee}", bob)
            poll(lambda: r.scard(graph.k_following(bob)) == 3, "bob's follows applied")
            for i in range(SCROLL_POSTS):
                api.call("POST", "/v1/posts", dave, json={"text": f"scroll post {i} #scroll"})
            for i in range(2):
                api.call("POST", "/v1/posts", carol, json={"text": f"carol says {i} #blockme"})
            expect = SCROLL_POSTS + 2
            poll(lambda: api.feed_len(bob) >= expect, "bob's feed filled", 120)
            cfg = {"base": f"http://127.0.0.1:{port}", "artifacts": str(ARTIFACTS), "chromium": CHROMIUM,
                   "expect_posts": expect, "traffic_posts": 20, "timeout_ms": 60000,
                   "users": {"alice": {"id": alice, "token": api.token(alice)},
                             "bob": {"id": bob, "token": api.token(bob)},
                             "carol": {"id": carol, "token": api.token(carol)},
                             "mod": {"id": moderator, "token": api.token(moderator, "moderator")}}}
            photo = logs / "photo.png"
            Image.new("RGB", (960, 640), (40, 110, 200)).save(photo)
            cfg["photo"] = str(photo)
            cfg_path = logs / "web.json"
            cfg_path.write_text(json.dumps(cfg))
            run = subprocess.run(["node", str(WEB / "run.mjs"), str(cfg_path)], capture_output=True, text=True,
                                 timeout=600, cwd=WEB, env={**os.environ}, check=False)
            assert run.returncode == 0 and run.stdout, f"browser run failed:\n{run.stderr[-4000:]}"
            return json.loads(run.stdout)
        finally:
            server.should_exit = True
            thread.join(30)


CHECKS = ["infinite_scroll_no_duplicates", "banner_then_post_without_reload", "like_changes_count",
          "reaction_changes_count", "friend_request_accepted", "keyboard_tabs",
          "blocked_author_vanishes", "moderator_hides_post", "human_errors", "phone_viewport", "dashboard_throughput",
          "photo_upload_shows_in_follower_feed"]


@pytest.mark.parametrize("name", CHECKS)
def test_browser_scenario(verdict, name):
    got = verdict["checks"].get(name)
    assert got is not None, f"{name} was not reached; checks: {json.dumps(verdict['checks'], indent=1)[:3000]}"
    assert got["ok"], f"{name}: {got['detail']}"


@pytest.mark.parametrize("page", ["feed", "moderation", "dashboard"])
def test_no_serious_accessibility_violations(verdict, page):
    assert page in verdict["axe"], f"axe did not run on {page}"
    assert verdict["axe"][page] == [], verdict["axe"][page]


def test_screenshots_saved(verdict):
    names = {Path(p).stem for p in verdict["shots"]}
    assert {"feed", "moderation", "dashboard", "feed-phone"} <= names
    assert all(Path(p).stat().st_size > 10_000 for p in verdict["shots"])
