"""Benchmark moderation on the real stack: ``python -m bench.moderation [--users N] [--spam-share 0.05]``.

Against the running stack (``feedstream up``), on its own keyspace, Redis database and consumer
groups: graph, fan-out, users and moderation workers as subprocesses, the API in-process. A seeded
world (``core.workload``) registers, follows and posts through the API; ``--spam-share`` of the
posts come from spam campaigns (fresh accounts, follow-spam, near-identical link posts), whose
accounts some legitimate users follow back. Once every post has a verdict, every reader's feed is
read once. Figures:

- ``spam_impression_share``: feed impressions that are spam posts (goal <= 1 %);
- ``legit_hidden_share``: legitimate posts hidden by moderation (goal <= 0.5 %);
- verdict latency p50/p99: a verdict's ``occurred_at`` minus its post's (publish-then-hide: the
  window during which a spam post can be seen), from ``moderation-verdicts.v1``;
- moderation events per worker CPU-second, and as a ratio to the ceiling measured in the same run:
  the classifier alone, in this process, on the same texts (CPU time).

Writes ``bench/results/moderation.json``. Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (nearest rank) of ``values``, None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    return float(ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)])


def impression_share(feeds: Sequence[Sequence[int]], spam: set[int]) -> tuple[int, int]:
    """``(spam impressions, impressions)`` over the feeds read."""
    shown = [p for page in feeds for p in page]
    return sum(1 for p in shown if p in spam), len(shown)


def summary(feeds: Sequence[Sequence[int]], spam: set[int], legit: set[int], hidden: set[int],
            latencies_ms: Sequence[float], events: int, worker_cpu_s: float, ceiling_per_cpu_s: float) -> dict[str, Any]:
    """The benchmark's figures from what it observed."""
    bad, shown = impression_share(feeds, spam)
    per_cpu = events / worker_cpu_s if worker_cpu_s > 0 else None
    return {
        "spam_impression_share": bad / shown if shown else None, "impressions": shown, "spam_impressions": bad,
        "legit_hidden_share": len(hidden & legit) / len(legit) if legit else None,
        "spam_hidden_share": len(hidden & spam) / len(spam) if spam else None,
        "posts": {"legit": len(legit), "spam": len(spam)},
        "verdict_latency_ms": {"p50": percentile(latencies_ms, 50), "p99": percentile(latencies_ms, 99),
                               "n": len(latencies_ms)},
        "events_per_worker_cpu_s": per_cpu, "classifier_ceiling_per_cpu_s": ceiling_per_cpu_s,
        "ratio_to_ceiling": per_cpu / ceiling_per_cpu_s if per_cpu and ceiling_per_cpu_s else None,
        "goals": {"spam_impression_share_max": 0.01, "legit_hidden_share_max": 0.005},
    }


def _ceiling(texts: list[tuple[str, list[str]]]) -> float:
    """Classifier-only events per CPU-second on these texts (rules, offensive, spam; fixed behaviour)."""
    from models.moderation.classify import Classifier
    from models.moderation.features import Behaviour, content

    clf = Classifier()
    items = [(content(t, links), Behaviour(1000.0, 10, 10, 1, 0)) for t, links in texts]
    clf.classify(items[:10])  # load the models outside the timing
    t0 = time.process_time()
    for i in range(0, len(items), 50):
        clf.classify(items[i:i + 50])
    return len(items) / max(1e-9, time.process_time() - t0)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark and print/save its figures."""
    ap = argparse.ArgumentParser(prog="python -m bench.moderation")
    ap.add_argument("--users", type=int, default=150)
    ap.add_argument("--posts-per-user", type=float, default=2.0)
    ap.add_argument("--spam-share", type=float, default=0.05)
    ap.add_argument("--timeout-s", type=float, default=300)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--out", default="moderation.json", help="file name under bench/results (or a path)")
    args = ap.parse_args(argv)
    import psutil
    from confluent_kafka import Consumer, TopicPartition
    from fastapi.testclient import TestClient

    from core.settings import get_settings, isolated, with_overrides
    from core.workload import (
        Op,
        OpStream,
        WorkloadConfig,
        build_graph,
        is_spam_account,
        spam_campaign,
        spam_ops,
        to_request,
    )
    from ops.workers import workers
    from serving.app import create_app
    from serving.auth import mint_token
    from stores import moderation as mod
    from stores import redis as redis_store
    from streams.admin import apply_all
    from streams.catalog import MODERATION_VERDICTS
    from streams.serde import Serde

    base = get_settings()
    apply_all(base, echo=lambda *_: None)
    s = isolated(base, f"bench_mod_{uuid.uuid4().hex[:6]}", 12)
    r = redis_store.client(s)
    r.flushdb()
    api_s = with_overrides(s, jwt_secret=uuid.uuid4().hex * 2, api_rate_limit_enabled=False)
    cfg = WorkloadConfig(users=args.users, seed=args.seed, prefix=f"m{uuid.uuid4().hex[:4]}")
    graph = build_graph(cfg)
    rng = random.Random(args.seed)
    stream = OpStream(cfg, graph, stream="bench-moderation")
    legit_ops = [stream.post() for _ in range(round(args.users * args.posts_per_user))]
    n_spam = round(len(legit_ops) * args.spam_share / (1 - args.spam_share))
    campaigns = [spam_campaign(cfg, i, accounts=5, posts_each=2, follows=30) for i in range(max(1, math.ceil(n_spam / 10)))]
    plans = [spam_ops(cfg, c, graph.users) for c in campaigns]
    spam_posts = [op for p in plans for op in p["post"]][:n_spam]
    tail = Consumer({"bootstrap.servers": s.kafka_bootstrap, "group.id": f"bench-{uuid.uuid4()}",
                     "enable.auto.commit": False})
    meta = tail.list_topics(MODERATION_VERDICTS.name, timeout=10).topics[MODERATION_VERDICTS.name]
    tail.assign([TopicPartition(MODERATION_VERDICTS.name, p, tail.get_watermark_offsets(
        TopicPartition(MODERATION_VERDICTS.name, p), timeout=10)[1]) for p in meta.partitions])
    serde = Serde(s.registry_url)
    out_path = RESULTS / args.out
    logs = out_path.parent / "moderation-logs"
    with workers(s, ("graph", "fanout", "users", "moderation"), log_dir=logs,
                 topology_group_suffix=f"-bench-{uuid.uuid4().hex[:6]}", topology_offset_reset="earliest") as procs, \
            TestClient(create_app(api_s)) as c:
        tokens: dict[str, dict[str, str]] = {}

        def call(method: str, path: str, user: str, body: Any = None) -> Any:
            h = tokens.setdefault(user, {"Authorization": f"Bearer {mint_token(user, api_s)}"})
            resp = c.request(method, path, json=body, headers=h)
            assert resp.status_code in (200, 202), (method, path, resp.status_code, resp.text)
            return resp.json()

        def send(op: Any) -> Any:
            req = to_request(op, [])
            return call(req.method, req.path, req.user, dict(req.json) if req.json is not None else None)

        accounts = [Op("register", u, body={"user_id": u, "handle": u, "display_name": u}) for u in graph.users]
        for op in accounts + [op for p in plans for op in p["register"]]:
            send(op)
        for a, b in graph.edges():
            call("PUT", f"/v1/users/{a}/following/{b}", a)
        for p in plans:
            for op in p["follow"]:
                send(op)
            for acct in {op.actor for op in p["post"]}:  # a few legit users follow each spammer back
                for u in rng.sample(graph.users, 5):
                    call("PUT", f"/v1/users/{u}/following/{acct}", u)
        time.sleep(5)  # let the graph apply the follows before the posts are scored
        proc = psutil.Process(procs[-1].pid)
        cpu0 = sum(proc.cpu_times()[:2])
        order = legit_ops + spam_posts
        rng.shuffle(order)
        spam_ids, legit_ids = set(), set()
        for op in order:
            pid = send(op)["post_id"]
            (spam_ids if is_spam_account(op.actor) else legit_ids).add(pid)
        everything = spam_ids | legit_ids
        latencies: list[float] = []
        seen: set[int] = set()
        deadline = time.monotonic() + args.timeout_s
        while seen < everything and time.monotonic() < deadline:
            msg = tail.poll(0.5)
            if msg is None or msg.error():
                continue
            v = serde.decode(msg.value()).value
            if v["source"] == "MODEL" and v["post_id"] in everything and v["post_id"] not in seen:
                seen.add(v["post_id"])
                at = v["occurred_at"]
                at_ms = at.timestamp() * 1000 if hasattr(at, "timestamp") else at
                latencies.append(at_ms - v["content_version"])
        cpu_s = sum(proc.cpu_times()[:2]) - cpu0
        time.sleep(2)
        feeds = [[it["post_id"] for it in call("GET", f"/v1/users/{u}/feed?limit=50", u)["items"]]
                 for u in graph.users if graph.following[u]]
        hidden = {int(x) for x in r.smembers(mod.HIDDEN)}
    tail.close()
    ceiling = _ceiling([(dict(op.body or {}).get("text", ""), list(dict(op.body or {}).get("links") or []))
                        for op in order])
    out = summary(feeds, spam_ids, legit_ids, hidden, latencies, len(seen), cpu_s, ceiling)
    out.update({"users": args.users, "spam_share": args.spam_share, "verdicts_seen": len(seen),
                "command": " ".join(["python -m bench.moderation", *(sys.argv[1:] if argv is None else argv)])})
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
