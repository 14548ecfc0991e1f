"""The chaos load: a mixed write load through the HTTP API with a good client, and a freshness probe.

Every write carries its own Idempotency-Key and is retried with the same key, with exponential
backoff (honouring Retry-After), on a transport error, 429, 409 (claim pending) and 5xx, until it
gets a definite answer or ``give_up_s`` passes. A 202 is an *acknowledged write*: its event id is
recorded and must later be in the log exactly once and in every view. The op mix, users and
follow graph come from :mod:`core.workload` (the bench's generator); the HTTP client is
:class:`ops.seed.ApiDriver` (the seed's and the bench's).
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from core.workload import Op, OpStream, Request, WorkloadConfig, build_graph, to_request
from ops.seed import ApiDriver, Result

RETRYABLE = {0, 409, 429, 500, 502, 503, 504}
VISIBILITY_MIX = (("PUBLIC", 0.75), ("FOLLOWERS", 0.25))


@dataclass
class Ack:
    """One acknowledged write: what it was, its event id, when it was sent and answered."""

    kind: str
    actor: str
    event_id: str
    sent: float
    acked: float
    attempts: int
    post_id: int | None = None
    comment_id: int | None = None
    target: str | None = None


@dataclass
class LoadStats:
    """What the load did: acknowledged writes, refused ones, retries, probe latencies."""

    acks: list[Ack] = field(default_factory=list)
    refused: dict[int, int] = field(default_factory=dict)  # final non-2xx status -> count
    gave_up: int = 0
    retries: int = 0
    retry_statuses: dict[int, int] = field(default_factory=dict)
    visible: list[tuple[float, float | None]] = field(default_factory=list)  # (t sent, s to visible or None)
    post_authors: dict[int, str] = field(default_factory=dict)


async def send_reliably(driver: ApiDriver, req: Request, stats: LoadStats, *, give_up_s: float = 90.0,
                        key: str | None = None) -> tuple[Result, int]:
    """Send ``req`` with one Idempotency-Key, retrying retryable answers with backoff; (last result, attempts)."""
    key = key or uuid.uuid4().hex
    deadline = time.monotonic() + give_up_s
    delay, attempts = 0.1, 0
    while True:
        attempts += 1
        res = await driver.send(req, idempotency_key=key)
        if res.status not in RETRYABLE or time.monotonic() >= deadline:
            return res, attempts
        stats.retries += 1
        stats.retry_statuses[res.status] = stats.retry_statuses.get(res.status, 0) + 1
        await asyncio.sleep(min(max(delay, res.retry_after_s or 0.0), 3.0) * random.uniform(0.8, 1.2))
        delay = min(delay * 2, 3.0)


class Load:
    """A synthetic population of ``cfg.users`` users writing through the API (their own prefix)."""

    def __init__(self, driver: ApiDriver, cfg: WorkloadConfig) -> None:
        self.driver, self.cfg = driver, cfg
        self.graph = build_graph(cfg)
        self.ops = OpStream(cfg, self.graph, stream="chaos")
        self.rng = random.Random(f"chaos:{cfg.seed}")
        self.stats = LoadStats()
        self.post_ids: list[int] = []
        self.own: dict[str, list[int]] = {}

    async def _must(self, req: Request) -> None:
        res, attempts = await send_reliably(self.driver, req, self.stats)
        if not res.ok:
            raise RuntimeError(f"set-up write {req.method} {req.path} answered {res.status}: {res.body}")
        self._record(req, res, time.monotonic(), attempts, Op("setup", req.user))

    @property
    def probe_pair(self) -> tuple[str, str]:
        """The freshness probe's author and its only follower (outside the op mix)."""
        return f"{self.cfg.prefix}probe-a", f"{self.cfg.prefix}probe-r"

    @property
    def users(self) -> list[str]:
        """Every user of the run (the mix's and the probe's)."""
        return [*self.graph.users, *self.probe_pair]

    async def setup(self, concurrency: int = 16) -> None:
        """Register every user and the follow graph (acknowledged writes too)."""
        sem = asyncio.Semaphore(concurrency)
        author, reader = self.probe_pair

        async def one(req: Request) -> None:
            async with sem:
                await self._must(req)

        await asyncio.gather(*(one(to_request(Op("register", u, body={
            "user_id": u, "handle": u.replace("-", "_")[:30], "display_name": f"User {u}"}), []))
            for u in self.users))
        await self.registered(deadline_s=180)
        edges = [*self.graph.edges(), (reader, author)]
        await asyncio.gather(*(one(to_request(Op("follow", a, target=b), [])) for a, b in edges))

    async def registered(self, deadline_s: float) -> None:
        """Wait until every profile reads 200: the follows then name users the graph topology knows.

        (The graph worker dead-letters a follow naming a user the users topology has not registered
        within ``graph_user_grace_s`` of the follow; a cold platform can be that far behind.)
        """
        t0 = time.monotonic()
        todo = list(self.users)
        while todo and time.monotonic() - t0 < deadline_s:
            res = await asyncio.gather(*(self.driver.send(Request("GET", f"/v1/users/{u}", u, is_read=True))
                                         for u in todo))
            todo = [u for u, r in zip(todo, res) if r.status != 200]
            if todo:
                await asyncio.sleep(0.5)
        if todo:
            raise RuntimeError(f"{len(todo)} registrations not applied within {deadline_s:.0f} s, e.g. {todo[0]}")

    def next_op(self) -> Op:
        """The next write of the mix; now and then a post is FOLLOWERS-only or an own post is deleted."""
        if self.own and self.rng.random() < 0.02:
            actor = self.rng.choice(sorted(self.own))
            if self.own[actor]:
                return Op("delete", actor, post_ref=self.own[actor].pop(self.rng.randrange(len(self.own[actor]))))
        op = self.ops.write(len(self.post_ids))
        if op.kind == "post":
            vis = self.rng.choices([v for v, _ in VISIBILITY_MIX], [w for _, w in VISIBILITY_MIX])[0]
            op = Op("post", op.actor, body={**(op.body or {}), "visibility": vis})
        return op

    def request(self, op: Op) -> Request:
        if op.kind == "delete":
            return Request("DELETE", f"/v1/posts/{op.post_ref}", op.actor)
        return to_request(op, self.post_ids)

    def _record(self, req: Request, res: Result, sent: float, attempts: int, op: Op) -> None:
        body = res.body if isinstance(res.body, dict) else {}
        ack = Ack(op.kind, req.user, str(body.get("event_id")), sent, time.monotonic(), attempts,
                  body.get("post_id"), body.get("comment_id"), op.target)
        self.stats.acks.append(ack)
        if op.kind in ("post", "probe") and ack.post_id is not None:
            self.stats.post_authors[int(ack.post_id)] = op.actor
        if op.kind == "post" and ack.post_id is not None:
            self.post_ids.append(int(ack.post_id))
            self.own.setdefault(op.actor, []).append(int(ack.post_id))

    async def write(self, op: Op) -> None:
        req = self.request(op)
        sent = time.monotonic()
        res, attempts = await send_reliably(self.driver, req, self.stats)
        if res.ok:
            self._record(req, res, sent, attempts, op)
        elif res.status in RETRYABLE:
            self.stats.gave_up += 1
        else:
            self.stats.refused[res.status] = self.stats.refused.get(res.status, 0) + 1

    async def run(self, rate: float, duration_s: float, tick: Callable[[float], Any] | None = None) -> None:
        """Open-loop writes at ``rate``/s for ``duration_s`` (each write awaits its own retries)."""
        t0, n, tasks = time.monotonic(), 0, set()
        while (now := time.monotonic() - t0) < duration_s:
            due = int(now * rate) + 1
            while n < due:
                task = asyncio.create_task(self.write(self.next_op()))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                n += 1
            if tick is not None:
                tick(now)
            await asyncio.sleep(min(0.05, 1.0 / rate))
        if tasks:
            await asyncio.gather(*tasks)

    async def probe(self, duration_s: float, every_s: float = 1.0, timeout_s: float = 30.0,
                    give_up_s: float = 90.0) -> None:
        """Write→visible, one probe at a time: a post by the probe author, then its follower's feed read
        every 0.25 s until the post is there (at most ``timeout_s``); the next probe ``every_s`` later.

        The probe's post is retried like the load's writes (up to ``give_up_s``): a probe that gave up
        on a 504 ("outcome unknown") during a Kafka outage left its post in the log unacknowledged."""
        author, reader = self.probe_pair
        feed = Request("GET", f"/v1/users/{reader}/feed?limit=5", reader, is_read=True)
        t0 = time.monotonic()
        while time.monotonic() - t0 < duration_s:
            sent = time.monotonic()
            res, _ = await send_reliably(self.driver, Request("POST", "/v1/posts", author, {
                "text": "freshness probe #probe"}), self.stats, give_up_s=give_up_s)
            if res.ok:
                self._record(Request("POST", "/v1/posts", author), res, sent, 1, Op("probe", author))
                pid, seen = int(res.body["post_id"]), None
                while seen is None and time.monotonic() - sent < timeout_s:
                    page = await self.driver.send(feed)
                    if page.ok and any(int(i.get("post_id", 0)) == pid for i in page.body.get("items", [])):
                        seen = time.monotonic() - sent
                    else:
                        await asyncio.sleep(0.25)
                self.stats.visible.append((sent, seen))
            await asyncio.sleep(max(0.0, every_s - (time.monotonic() - sent)))
