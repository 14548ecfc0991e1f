"""Graph worker drain: ``python -m bench.graph --drain N [--profile graph.svg]``.

The graph part of ``feedstream bench --scenario topologies`` alone (:func:`bench.topologies.graph_drain`):
N Followed between the users of a 5,000-user power-law graph pre-loaded on graph.v1, one real
graph worker draining them; events/s, events per worker CPU-second, ratios to the same-run raw
consume and raw Cassandra insert ceilings, and the load average before and after. On the stack in
``FEEDSTREAM_*`` (keyspace ``fs_bench_fanout``, Redis db 8). Writes ``graph_drain.json`` to the
state dir's ``bench/``.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from bench.topologies import graph_drain
from core.settings import get_settings, isolated


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--drain", type=int, default=3000, help="Followed events pre-loaded on graph.v1")
    ap.add_argument("--profile", type=Path, default=None, help="py-spy flame graph (SVG) of the drain worker")
    args = ap.parse_args()
    base = get_settings()
    s = isolated(base, "fs_bench_fanout", 8)
    load = [os.getloadavg()]
    res = graph_drain(base, s, args.drain, profile=args.profile)
    load.append(os.getloadavg())
    out = {"events": args.drain, "load_average": load, **res}
    path = base.state_dir / "bench" / "graph_drain.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
