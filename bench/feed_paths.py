"""CPU per feed page of the two read paths, in one process on the same data: the event-loop fast path
(:func:`serving.feed.fast.fast_feed`, one Redis script call) vs the full pipeline
(:func:`serving.feed.pipeline.read_known_feed`, sync clients), and the fast path's hydration after
the script vs the shared ``shape()``. No HTTP: this is where the read path's own microseconds go, as
ratios measured in one run.

    python -m bench.feed_paths --pages 300
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from typing import Any

from bench.read_api import bench_settings, seed
from bench.report import RESULTS_DIR
from core.settings import with_overrides
from models.ranking import EngagementRecencyRanker
from serving.feed.engines import ReadEngines
from serving.feed.fast import fast_feed
from serving.feed.pipeline import read_known_feed


async def measure(e: ReadEngines, readers: list[str], pages: int, limit: int, algorithm: str) -> dict[str, float]:
    """Process CPU ms per page of each path (alternating blocks, so load swings hit both)."""
    for rd in readers:  # warm: rebuild once, load graph sets, fill caches
        read_known_feed(e, rd, algorithm, limit, None)
    spent = {"fast": 0.0, "full": 0.0}
    declined = 0
    for block in range(10):
        c0 = time.process_time()
        for i in range(pages // 10):
            if await fast_feed(e, readers[(block * 31 + i) % len(readers)], algorithm, limit, None) is None:
                declined += 1
        c1 = time.process_time()
        for i in range(pages // 10):
            read_known_feed(e, readers[(block * 31 + i) % len(readers)], algorithm, limit, None)
        spent["fast"] += c1 - c0
        spent["full"] += time.process_time() - c1
    n = 10 * (pages // 10)
    return {"fast_ms": round(1000 * spent["fast"] / n, 3), "full_ms": round(1000 * spent["full"] / n, 3),
            "fast_to_full": round(spent["fast"] / spent["full"], 3), "fast_declined": declined}


async def hydration(e: ReadEngines, readers: list[str], limit: int, rounds: int = 5) -> dict[str, float]:
    """CPU µs per page of the Python after the page script, on real script replies: the fast path's
    lean hydration (:func:`serving.feed.fast._items`) vs the shared
    :func:`serving.readers.items.shape` with the stores' parsers (what the fast path used before),
    alternating rounds; both include decoding the 20 bodies."""
    import orjson

    from serving.feed import fast
    from serving.readers.engagement import counts_dict
    from serving.readers.items import shape
    from stores import counters, feedpage
    from stores import users as users_store

    pages = []
    for rd in readers:
        pg = await feedpage.feed_page(e.page_script, rd, None, 2 * limit, limit, e.settings.celebrity_threshold,
                                      e.settings.author_cache_cap, int(time.time() * 1000))
        if isinstance(pg, feedpage.RawPage):
            pages.append(pg)

    def shared(pg: feedpage.RawPage) -> list[dict[str, Any]]:
        posts = [orjson.loads(b) for b in pg.bodies]
        people = {a: {"user_id": a, **users_store._decode(feedpage._pairs(raw))} for a, raw in pg.profiles.items()}
        counts = {x["post_id"]: counts_dict(counters.parse_hot_counts(feedpage._pairs(raw)))
                  for x, raw in zip(posts, pg.counts) if raw}
        items = shape(posts, people, counts, pg.affinity)
        for it in items:
            it.pop("affinity", None)
        return items

    spent = {"lean": 0.0, "shared": 0.0}
    for _ in range(rounds):
        c0 = time.process_time()
        for pg in pages:
            await fast._items(e, pg, [orjson.loads(b) for b in pg.bodies], False)
        c1 = time.process_time()
        for pg in pages:
            shared(pg)
        spent["lean"] += c1 - c0
        spent["shared"] += time.process_time() - c1
    n = rounds * len(pages)
    return {"lean_us": round(1e6 * spent["lean"] / n, 1), "shared_us": round(1e6 * spent["shared"] / n, 1),
            "lean_to_shared": round(spent["lean"] / spent["shared"], 3), "pages": len(pages)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="python -m bench.feed_paths", description=__doc__.split("\n\n")[0])
    p.add_argument("--pages", type=int, default=300)
    p.add_argument("--limit", type=int, default=20)
    args = p.parse_args(argv)
    s = bench_settings()
    shape = seed(s, 60, 40, 20, 20, 2, random.Random(7))
    e = ReadEngines(with_overrides(s, celebrity_threshold=59), EngagementRecencyRanker())

    async def both() -> dict[str, dict[str, float]]:  # one event loop: the async client is bound to it
        out = {alg: await measure(e, shape["readers"], args.pages, args.limit, alg)
               for alg in ("chronological", "ranked")}
        return out | {"hydration": await hydration(e, shape["readers"], args.limit)}

    out = asyncio.run(both())
    e.close()
    h = out["hydration"]
    print(f"hydration after the script: lean {h['lean_us']:.0f} us CPU/page, shared shape() "
          f"{h['shared_us']:.0f} us (x{h['lean_to_shared']:.2f})")
    for alg, m in out.items():
        if alg == "hydration":
            continue
        print(f"{alg}: fast path {m['fast_ms']:.2f} ms CPU/page, full pipeline {m['full_ms']:.2f} ms "
              f"(x{m['fast_to_full']:.2f}; fast path declined {m['fast_declined']})")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "feed_paths.json").write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
