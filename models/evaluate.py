"""Offline evaluation (NDCG@k of the LightGBM ranker vs the heuristic, chronological and random
orders on held-out readers) and a per-page latency bench of the ranker next to the heuristic.

``python -m models.evaluate`` prints the NDCG table; ``--bench`` adds p50/p99 per page.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from models.data import Session, SynthConfig, generate
from models.features import page_matrix

Scorer = Callable[[Session], Sequence[float]]


def ndcg_at_k(labels: Sequence[int], scores: Sequence[float], post_ids: Sequence[int], k: int = 10) -> float | None:
    """NDCG@k of the order the read API would show (score desc, ties newest first); None if no positive."""
    ideal = sorted(labels, reverse=True)[:k]
    idcg = sum((2 ** r - 1) / np.log2(i + 2) for i, r in enumerate(ideal))
    if idcg == 0:
        return None
    order = sorted(range(len(labels)), key=lambda i: (-scores[i], -post_ids[i]))[:k]
    dcg = sum((2 ** labels[j] - 1) / np.log2(i + 2) for i, j in enumerate(order))
    return float(dcg / idcg)


def mean_ndcg(sessions: Sequence[Session], scorer: Scorer, k: int = 10) -> float:
    """Mean NDCG@k over sessions with at least one engaged item."""
    vals = [ndcg_at_k(s.labels, list(scorer(s)), [int(it["post_id"]) for it in s.items], k) for s in sessions]
    kept = [v for v in vals if v is not None]
    return float(np.mean(kept)) if kept else float("nan")


def baselines(seed: int = 0) -> dict[str, Scorer]:
    """The orders the model must beat: the read API's heuristic, chronological, random."""
    from models.ranking import EngagementRecencyRanker

    heur, rng = EngagementRecencyRanker(), random.Random(seed)
    return {
        heur.name: lambda s: [heur.score(it, s.now_ms) for it in s.items],
        "chronological": lambda s: [float(it["post_id"]) for it in s.items],
        "random": lambda s: [rng.random() for _ in s.items],
    }


def booster_scorer(booster: Any) -> Scorer:
    """Score a session with a booster exactly as the serving ranker does (one matrix, one predict)."""
    return lambda s: booster.predict(page_matrix(s.items, s.now_ms, s.contexts), num_threads=1).tolist()


def ndcg_table(sessions: Sequence[Session], booster: Any, name: str, k: int = 10) -> dict[str, float]:
    """NDCG@k per scorer, the model first."""
    table = {name: mean_ndcg(sessions, booster_scorer(booster), k)}
    table.update({n: mean_ndcg(sessions, f, k) for n, f in baselines().items()})
    return table


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def bench(sessions: Sequence[Session], ranker: Any, sizes: Sequence[int] = (20, 100), rounds: int = 400,
          ) -> dict[str, Any]:
    """p50/p99 ms per page for the LightGBM ranker and the heuristic, interleaved in one run."""
    from models.ranking import EngagementRecencyRanker

    heur = EngagementRecencyRanker()
    pool = [it for s in sessions for it in s.items]
    ctx = {a: c for s in sessions for a, c in s.contexts.items()}
    ranker.context = lambda reader, authors: {a: ctx[a] for a in authors if a in ctx}
    out: dict[str, Any] = {}
    rng = random.Random(1)
    for n in sizes:
        t_ml: list[float] = []
        t_h: list[float] = []
        cpu_ml: list[float] = []
        for _ in range(rounds):
            page = [dict(it) for it in rng.sample(pool, n)]
            for fn, acc in ((ranker.scores, t_ml), (heur.scores, t_h)):
                c0, t0 = time.thread_time(), time.perf_counter()
                got = fn("reader", page)
                acc.append((time.perf_counter() - t0) * 1000)
                if acc is t_ml:
                    cpu_ml.append((time.thread_time() - c0) * 1000)
                assert len(got) == n
        out[str(n)] = {"lightgbm_p50_ms": _pct(t_ml, 0.5), "lightgbm_p99_ms": _pct(t_ml, 0.99),
                       "heuristic_p50_ms": _pct(t_h, 0.5), "heuristic_p99_ms": _pct(t_h, 0.99),
                       "ratio_p50": _pct(t_ml, 0.5) / _pct(t_h, 0.5),
                       "budget_share_p99": _pct(t_ml, 0.99) / 50.0, "rounds": rounds,
                       "mean_ms": statistics.fmean(t_ml), "lightgbm_cpu_p99_ms": _pct(cpu_ml, 0.99)}
    return out


def run(artifact: Path | None = None, do_bench: bool = False, k: int = 10) -> dict[str, Any]:
    """Evaluate the artifact on the held-out readers of its own training config (and bench it)."""
    from models.ranker import load_ranker, read_manifest

    manifest = read_manifest(artifact)
    tr = manifest["training"]
    cfg = SynthConfig(**{f: tr[f] for f in ("users", "seed", "posts_per_user", "sessions_per_reader", "page",
                                            "horizon_h", "test_fraction")})
    _, test = generate(cfg)
    ranker = load_ranker(artifact)
    result: dict[str, Any] = {"artifact": ranker.name, "k": k, "test_sessions": len(test.sessions),
                              "test_rows": test.rows, f"ndcg@{k}": ndcg_table(test.sessions, ranker.booster,
                                                                             ranker.name, k)}
    if do_bench:
        result["bench"] = bench(test.sessions, ranker)
        result["load_average"] = list(os.getloadavg())
    return result


def format_result(result: dict[str, Any]) -> str:
    """A plain-text table of :func:`run`'s result."""
    k = result["k"]
    head = f"NDCG@{k} on {result['test_sessions']} held-out sessions ({result['test_rows']} items), split by reader:"
    lines = [head]
    lines += [f"  {n:<24} {v:.4f}" for n, v in result[f"ndcg@{k}"].items()]
    if "load_average" in result:
        lines.append("load average during bench: " + " ".join(f"{x:.1f}" for x in result["load_average"]))
    for n, b in result.get("bench", {}).items():
        lines.append(f"page of {n}: lightgbm p50 {b['lightgbm_p50_ms']:.3f} ms p99 {b['lightgbm_p99_ms']:.3f} ms | "
                     f"heuristic p50 {b['heuristic_p50_ms']:.3f} ms p99 {b['heuristic_p99_ms']:.3f} ms | "
                     f"ratio p50 {b['ratio_p50']:.1f}x | p99 = {100 * b['budget_share_p99']:.1f}% of the 50 ms budget "
                     f"(lightgbm thread-CPU p99 {b['lightgbm_cpu_p99_ms']:.3f} ms)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """CLI: ``python -m models.evaluate [--artifact DIR] [--bench] [--json]``."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--artifact", type=Path, default=None, help="artifact directory (default: committed)")
    ap.add_argument("--bench", action="store_true", help="also time pages of 20 and 100 items")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    a = ap.parse_args(argv)
    result = run(a.artifact, a.bench)
    print(json.dumps(result, indent=2) if a.json else format_result(result))


if __name__ == "__main__":
    main()
