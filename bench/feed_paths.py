"""CPU per feed page of the two read paths, in one process on the same data: the event-loop fast path
(:func:`serving.feed.fast.fast_feed`, one Redis script call) vs the full pipeline
(:func:`serving.feed.pipeline.read_known_feed`, sync clients). No HTTP: this is where the read path's
own microseconds go, as a ratio measured in one run.

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


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="python -m bench.feed_paths", description=__doc__.split("\n\n")[0])
    p.add_argument("--pages", type=int, default=300)
    p.add_argument("--limit", type=int, default=20)
    args = p.parse_args(argv)
    s = bench_settings()
    shape = seed(s, 60, 40, 20, 20, 2, random.Random(7))
    e = ReadEngines(with_overrides(s, celebrity_threshold=59), EngagementRecencyRanker())

    async def both() -> dict[str, dict[str, float]]:  # one event loop: the async client is bound to it
        return {alg: await measure(e, shape["readers"], args.pages, args.limit, alg)
                for alg in ("chronological", "ranked")}

    out = asyncio.run(both())
    e.close()
    for alg, m in out.items():
        print(f"{alg}: fast path {m['fast_ms']:.2f} ms CPU/page, full pipeline {m['full_ms']:.2f} ms "
              f"(x{m['fast_to_full']:.2f}; fast path declined {m['fast_declined']})")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "feed_paths.json").write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
