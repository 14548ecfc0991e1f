"""Search benchmark: indexing per worker core, search QPS/p99 and write->searchable lag, each against
a raw OpenSearch ceiling measured in the same run. Needs the local stack with OpenSearch
(``feedstream local up``); bounded by ``--docs``, ``--duration`` and ``--lag-samples``; loopback only.

1. Raw bulk ceiling: ``--docs`` post documents bulk-indexed by one client (opensearch-py
   ``helpers.bulk``, 1000 per request) into a scratch index: docs/s.
2. Indexing through the topology: ``--docs`` PostCreated events produced to posts.v1, then one
   ``feedstream topology run search`` worker (fresh group and alias, from the topic's current end
   minus those events) indexes them: docs per worker CPU-second (psutil), and as a ratio to (1).
3. Search: ``GET /v1/search`` on its own uvicorn server, closed-loop at ``--concurrency`` for
   ``--duration`` s, against the same query body sent raw to OpenSearch (ceiling): QPS, p50/p99.
4. Write->searchable: a post with a unique word produced to Kafka, polled on OpenSearch every
   20 ms until found: p50/p99 over ``--lag-samples`` posts (includes the 1 s refresh interval).

    python -m bench.search --docs 20000 --duration 10 --concurrency 16 --lag-samples 50
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import time
import uuid
from typing import Any

import httpx
import psutil
from opensearchpy import AsyncOpenSearch, helpers
from opensearchpy.exceptions import NotFoundError

from bench.ceilings import closed_loop
from bench.report import RESULTS_DIR, latency_ms, summarize
from bench.write_api import _free_port, start_server
from core.events import new_event
from core.ids import new_post_id
from core.settings import REPO_ROOT, Settings, get_settings, with_overrides
from ops.workers import worker_env
from serving.auth import mint_token
from stores import redis as redis_store
from stores import search as idx
from stores.users import k_registered
from streams.producer import EventProducer

WORDS = [f"word{i}" for i in range(500)]


def _text(rng: random.Random) -> str:
    return " ".join(rng.choices(WORDS, k=12))


def raw_bulk(os_: Any, n: int, rng: random.Random) -> dict[str, Any]:
    name = idx.create_index(os_, f"fs-bench-raw-{uuid.uuid4().hex[:6]}")
    acts = [{"_index": name, "_id": f"p:{i}", "_source": {"kind": "post", "post_id": i, "author_id": f"a{i % 97}",
                                                         "text": _text(rng), "hashtags": [], "visibility": "PUBLIC",
                                                         "created_at": i, "deleted": False}} for i in range(n)]
    t = time.perf_counter()
    helpers.bulk(os_, acts, chunk_size=1000)
    dt = time.perf_counter() - t
    os_.indices.delete(index=name)
    return {"docs": n, "seconds": round(dt, 3), "docs_per_s": n / dt}


AUTHORS = [f"a{i}" for i in range(97)] + ["lagger"]


def register_authors(s: Settings) -> None:
    """Give the bench's authors the write API's registration mark: the search worker refuses posts by
    authors who never registered (issue 14 item 5), as it would refuse these without it."""
    r = redis_store.client(s)
    with r.pipeline(transaction=False) as p:
        for a in AUTHORS:
            p.set(k_registered(a), "1", ex=s.api_registered_ttl_s)
        p.execute()


def topology_indexing(s: Settings, os_: Any, n: int, rng: random.Random, timeout_s: float) -> dict[str, Any]:
    alias = f"fs-bench-{uuid.uuid4().hex[:6]}"
    with EventProducer(s) as producer:
        for _ in range(n):
            a = f"a{rng.randrange(97)}"
            producer.send("PostCreated", new_event(a, post_id=new_post_id(), author_id=a, text=_text(rng),
                                                   media=[], links=[], hashtags=[], mentions=[], visibility="PUBLIC"))
        producer.flush()
    env = worker_env(with_overrides(s, search_alias=alias), topology_group_suffix=f"-bench-{alias}",
                     topology_offset_reset="earliest")
    proc = subprocess.Popen([sys.executable, "-m", "feedstream.cli", "topology", "run", "search"], env=env,
                            cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ps = psutil.Process(proc.pid)
    t0, deadline, docs = time.perf_counter(), time.monotonic() + timeout_s, 0
    try:
        while time.monotonic() < deadline:
            time.sleep(0.5)
            try:
                docs = os_.count(index=alias, body={"query": {"term": {"kind": "post"}}})["count"]
            except NotFoundError:  # the alias appears with the first batch
                docs = 0
            if docs >= n:
                break
        cpu = sum(ps.cpu_times()[:2])
        wall = time.perf_counter() - t0
    finally:
        proc.terminate()
        proc.wait(30)
        for i in os_.indices.get_alias(name=alias) if os_.indices.exists_alias(name=alias) else []:
            os_.indices.delete(index=i)
    return {"docs": docs, "wall_s": round(wall, 2), "worker_cpu_s": round(cpu, 2),
            "docs_per_worker_cpu_s": docs / cpu if cpu else 0.0,
            "note": "the whole posts.v1 log is read from offset 0; worker CPU includes start-up (an upper bound)"}


async def search_phase(s: Settings, port: int, token: str, concurrency: int, duration_s: float) -> dict[str, Any]:
    body = idx.post_query("word1 word2", idx.Reader("bench"), limit=20)
    osc = AsyncOpenSearch(hosts=[s.opensearch_url])
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}",
                                 headers={"Authorization": f"Bearer {token}"}) as http:
        async def raw(i: int) -> tuple[bool, str]:
            await osc.search(index=s.search_alias, body=body)
            return True, "raw"

        async def api(i: int) -> tuple[bool, str]:
            r = await http.get("/v1/search", params={"q": "word1 word2", "limit": 20})
            return r.status_code == 200, str(r.status_code)

        out = {}
        for name, call in (("raw_opensearch", raw), ("api_search", api)):
            # warm-up, untimed: the API's first read connects Cassandra (the graph facts' loader)
            await closed_loop(call, concurrency, min(2.0, duration_s), 10**7, time.perf_counter())
            t = time.perf_counter()
            samples = await closed_loop(call, concurrency, duration_s, 10**7, t)
            out[name] = summarize(samples, time.perf_counter() - t)
    await osc.close()
    out["ratio_qps"] = out["api_search"]["rate_per_s"] / max(out["raw_opensearch"]["rate_per_s"], 1e-9)
    return out


def lag_phase(s: Settings, os_: Any, samples: int) -> dict[str, Any]:
    lags = []
    with EventProducer(s) as producer:
        for _ in range(samples):
            w = "lag" + uuid.uuid4().hex[:10]
            t = time.perf_counter()
            producer.send("PostCreated", new_event("lagger", post_id=new_post_id(), author_id="lagger", text=w,
                                                   media=[], links=[], hashtags=[], mentions=[], visibility="PUBLIC"))
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                hits = os_.search(index=s.search_alias, body={"query": {"term": {"text": w}}, "size": 1})
                if hits["hits"]["hits"]:
                    lags.append(time.perf_counter() - t)
                    break
                time.sleep(0.02)
    return {"samples": len(lags), "latency_ms": latency_ms(lags)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", type=int, default=20_000)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--lag-samples", type=int, default=50)
    ap.add_argument("--timeout", type=float, default=300.0)
    a = ap.parse_args(argv)
    s = with_overrides(get_settings(), api_rate_limit_enabled=False)
    os_ = idx.client(s.opensearch_url, timeout_s=120)
    rng = random.Random(3)
    result: dict[str, Any] = {"machine_load": os.getloadavg()}
    register_authors(s)
    result["raw_bulk"] = raw_bulk(os_, a.docs, rng)
    result["topology"] = topology_indexing(s, os_, a.docs, rng, a.timeout)
    result["topology"]["ratio_to_raw_bulk"] = (result["topology"]["docs_per_worker_cpu_s"]
                                               / result["raw_bulk"]["docs_per_s"])
    print("write->searchable needs a running `feedstream topology run search` on the configured alias")
    result["write_to_searchable"] = lag_phase(s, os_, a.lag_samples)
    port = _free_port()
    env = {"FEEDSTREAM_API_RATE_LIMIT_ENABLED": "false"}
    server = start_server(port, env)
    try:
        token = mint_token("bench-reader", s)
        result["search"] = asyncio.run(search_phase(s, port, token, a.concurrency, a.duration))
    finally:
        server.terminate()
        server.wait(30)
    text = json.dumps(result, indent=2, default=str)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"search-{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(text)
    print(text)
    print(f"json: {path}")


if __name__ == "__main__":
    main()
