"""Drive the public API as a synthetic user population, and load the demo world through it.

:class:`ApiDriver` is the HTTP client the seed and the bench share (JWTs minted with the API's
own function). :func:`seed_if_empty` is what ``feedstream up`` calls: it loads the demo world
once, and a marker in Redis says it is loaded. Every seed request carries a deterministic
Idempotency-Key, so a seed interrupted half-way can be rerun without duplicating anything.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from core.settings import Settings
from core.workload import Request, WorkloadConfig, seed_plan, to_request
from stores import redis as redis_store

MARKER_KEY = redis_store.SEED_MARKER
LOCK_KEY = redis_store.SEED_LOCK
DEMO = WorkloadConfig()  # 200 users, power-law follows, 3 celebrities, 1000 posts, 2000 engagements
Progress = Callable[[str, int, int], None]


class SeedError(Exception):
    """The world could not be loaded (API down, requests refused, not loopback)."""


def require_loopback(host: str) -> None:
    """Refuse to drive anything but this machine."""
    try:
        addrs = {ai[4][0] for ai in socket.getaddrinfo(host, None)}
    except OSError as exc:
        raise SeedError(f"cannot resolve {host!r}: {exc}") from exc
    if not addrs or not all(ipaddress.ip_address(a).is_loopback for a in addrs):
        raise SeedError(f"the bench only targets loopback; {host!r} resolves to {sorted(addrs)}")


@dataclass
class Result:
    """An API answer: status (0 for a transport error), seconds taken, decoded JSON body."""

    status: int
    latency_s: float
    body: Any = None
    retry_after_s: float = 0.0

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class ApiDriver:
    """Async HTTP client of the API with JWTs minted by the API's own function.

    Clients bind to several loopback source addresses (127.0.0.2, ...), so a synthetic user
    population is not one client IP; the per-IP limit then applies per simulated address.
    """

    def __init__(self, settings: Settings, *, addresses: int = 8, timeout_s: float = 10.0,
                 max_connections: int = 64) -> None:
        from core.settings import with_overrides
        from serving.auth import mint_token

        require_loopback(settings.host)
        self._api = with_overrides(settings)
        self._mint = mint_token
        self._tokens: dict[str, str] = {}
        local = [None] if settings.host not in ("127.0.0.1", "localhost") else \
            [f"127.0.0.{2 + i}" for i in range(max(1, addresses))]
        per = max(4, max_connections // len(local))
        self.clients = [httpx.AsyncClient(
            base_url=settings.api_url, timeout=timeout_s,
            limits=httpx.Limits(max_connections=per, max_keepalive_connections=per),
            transport=httpx.AsyncHTTPTransport(local_address=a, retries=0) if a else None)
            for a in local]
        self.addresses = [a or settings.host for a in local]

    def token(self, user: str) -> str:
        """A bearer token for ``user`` (cached; valid for 6 hours)."""
        tok = self._tokens.get(user)
        if tok is None:
            tok = self._tokens[user] = self._mint(user, self._api, 6 * 3600)
        return tok

    def _client(self, key: str | int) -> httpx.AsyncClient:
        idx = key if isinstance(key, int) else sum(key.encode())
        return self.clients[idx % len(self.clients)]

    async def get_raw(self, path: str, client: int = 0) -> tuple[int, float]:
        """An unauthenticated GET (health, noop): status and seconds."""
        t = time.perf_counter()
        try:
            status = (await self._client(client).get(path)).status_code
        except httpx.HTTPError:
            status = 0
        return status, time.perf_counter() - t

    async def send(self, req: Request, *, idempotency_key: str | None = None,
                   params: Mapping[str, Any] | None = None) -> Result:
        """Send ``req`` as its user; transport failures come back as status 0."""
        headers = {"Authorization": f"Bearer {self.token(req.user)}"}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        t = time.perf_counter()
        try:
            resp = await self._client(req.user).request(req.method, req.path, json=req.json,
                                                         headers=headers, params=params)
        except httpx.HTTPError as exc:
            return Result(0, time.perf_counter() - t, repr(exc))
        elapsed = time.perf_counter() - t
        try:
            body = resp.json() if resp.content else None
        except ValueError:
            body = resp.text
        return Result(resp.status_code, elapsed, body, float(resp.headers.get("Retry-After", 0) or 0))

    async def openapi_paths(self) -> dict[str, set[str]]:
        """Path -> HTTP methods the running API serves."""
        resp = await self.clients[0].get("/openapi.json")
        resp.raise_for_status()
        return {p: {m.upper() for m in ops} for p, ops in resp.json().get("paths", {}).items()}

    async def aclose(self) -> None:
        """Close every client."""
        await asyncio.gather(*(c.aclose() for c in self.clients))


async def run_all(driver: ApiDriver, reqs: Sequence[tuple[Request, str | None]], concurrency: int,
                  *, retries_on_429: int = 20, on_result=None) -> list[Result]:
    """Send requests with bounded concurrency, honouring 429 Retry-After; results in request order."""
    results: list[Result | None] = [None] * len(reqs)
    it = iter(range(len(reqs)))

    async def worker() -> None:
        for i in it:
            req, key = reqs[i]
            for attempt in range(retries_on_429 + 1):
                res = await driver.send(req, idempotency_key=key)
                # a transport error (status 0, e.g. a keep-alive connection the server closed)
                # is safe to retry only when the Idempotency-Key makes the retry a no-op
                retryable = res.status in (429, 409, 503) or (res.status == 0 and key is not None)
                if not retryable or attempt == retries_on_429:
                    break
                await asyncio.sleep(max(0.05, min(res.retry_after_s or 0.2, 2.0)))
            results[i] = res
            if on_result is not None:
                on_result(i, res)

    await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))
    return [r for r in results if r is not None]



def _check(phase: str, results: Sequence[Result]) -> None:
    bad = [r for r in results if not r.ok]
    if bad:
        shown = "; ".join(f"{r.status} {str(r.body)[:160]}" for r in bad[:3])
        raise SeedError(f"seed phase {phase!r}: {len(bad)} of {len(results)} requests failed, e.g. {shown}")


async def seed_world(settings: Settings, cfg: WorkloadConfig = DEMO, *, progress: Progress | None = None,
                     concurrency: int = 32) -> dict[str, Any]:
    """Load ``cfg``'s world through the API, phase by phase; raise :class:`SeedError` on any failure."""
    plan = seed_plan(cfg)
    driver = ApiDriver(settings)
    counts: dict[str, int] = {}
    post_ids: list[int] = []
    try:
        status, _ = await driver.get_raw("/healthz")
        if status != 200:
            raise SeedError(f"the API at {settings.api_url} is not answering /healthz (status {status})")
        for phase, ops in plan.items():
            reqs = [(to_request(op, post_ids), f"seed-{cfg.prefix}{cfg.seed}-{phase}-{i}")
                    for i, op in enumerate(ops)]
            done = [0]

            def tick(_i: int, _r: Result, phase: str = phase, total: int = len(reqs),
                     done: list[int] = done) -> None:
                done[0] += 1
                if progress is not None:
                    progress(phase, done[0], total)

            results = await run_all(driver, reqs, concurrency, on_result=tick)
            _check(phase, results)
            if phase == "post":
                post_ids = [int(r.body["post_id"]) for r in results]
            counts[phase] = len(results)
    finally:
        await driver.aclose()
    return {"seed": cfg.seed, "prefix": cfg.prefix, "users": cfg.users, "celebrities": cfg.celebrities,
            "counts": counts, "loaded_at": datetime.now(UTC).isoformat(timespec="seconds")}


def marker(settings: Settings) -> dict[str, Any] | None:
    """The demo-world marker, if the world is loaded."""
    from stores.redis import client

    raw = client(settings).get(MARKER_KEY)
    return json.loads(raw) if raw else None


def seed(settings: Settings, cfg: WorkloadConfig = DEMO, *, progress: Progress | None = None,
         force: bool = False) -> dict[str, Any]:
    """Load the demo world unless the marker says it is loaded (``force``: load anyway); set the marker."""
    from stores.redis import client

    r = client(settings)
    found = marker(settings)
    if found is not None and not force:
        return {**found, "already_loaded": True}
    if not r.set(LOCK_KEY, str(time.time()), nx=True, ex=900):
        raise SeedError(f"another seed holds {LOCK_KEY} in Redis; wait for it (or delete the key if it died)")
    try:
        t0 = time.perf_counter()
        result = asyncio.run(seed_world(settings, cfg, progress=progress))
        result["took_s"] = round(time.perf_counter() - t0, 1)
        r.set(MARKER_KEY, json.dumps(result))
        return result
    finally:
        r.delete(LOCK_KEY)


def seed_if_empty(settings: Settings, echo: Callable[[str], Any] = print) -> None:
    """Called by ``feedstream up``: load the demo world once; skip if loaded or the API is not running."""
    found = marker(settings)
    if found is not None:
        echo(f"demo data: already loaded ({found['users']} users, {found['counts'].get('post', 0)} posts, "
             f"at {found['loaded_at']})")
        return
    try:
        ok = httpx.get(f"{settings.api_url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        ok = False
    if not ok:
        echo(f"demo data: skipped, the API is not running at {settings.api_url}")
        return
    echo("demo data: loading through the API (200 users, ~1000 posts) ...")
    res = seed(settings)
    c = res["counts"]
    echo(f"demo data: loaded {c['register']} users, {c['follow']} follows, {c['post']} posts, "
         f"{c['engage']} engagements in {res['took_s']}s")
