"""The chaos suite's output: a markdown table per fault, JSON, and a plot of lag and write→visible."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

HEADER = ("| fault | acked writes | missing from log | duplicates | unacked in log | missing from views "
          "| counter mismatches | other view mismatches | recovery s | drain to lag 0 s |\n"
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")


def row(r: Any) -> str:
    v = r.verdict
    missing_views = v["feed_items_missing"] + v["notifications_missing"]
    counters = f"{v['counters_wrong_cassandra'] + v['counters_wrong_api']}/{2 * v['counters_checked']}"
    other = (v["feed_items_wrong"] + v["profiles_wrong"] + v["comments_wrong"] + v["notifications_extra"])
    rec = "-" if r.recovery_s is None else f"{r.recovery_s:g}"
    drain = "no (600 s)" if r.drain_s is None else f"{r.drain_s:g}"
    return (f"| {r.fault} | {r.acked} | {v['missing_from_log']} | {v['duplicates']} | {v['unacked_in_log']} "
            f"| {missing_views} | {counters} | {other} | {rec} | {drain} |")


def table(results: Sequence[Any]) -> str:
    """The markdown results table (0 is right in every mismatch column)."""
    return "\n".join([HEADER, *(row(r) for r in results)])


def save(results: Sequence[Any], out: Path, command: str) -> dict[str, Path]:
    """results.json, results.md and chaos.png under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "results.json", "md": out / "results.md", "png": out / "chaos.png"}
    paths["json"].write_text(json.dumps({"command": command, "runs": [asdict(r) for r in results]}, indent=1,
                                        default=str))
    paths["md"].write_text(f"Reproduce: `{command}`\n\n{table(results)}\n")
    plot(results, paths["png"])
    return paths


def plot(results: Sequence[Any], path: Path) -> None:
    """Per fault: total consumer lag and write→visible latency against time, fault window shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = max(1, len(results))
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.0 * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    for ax, r in zip(axes.flat, results):
        xs = [t for t, x in r.lag if x is not None]
        ax.plot(xs, [x for _, x in r.lag if x is not None], color="tab:blue", lw=1, marker=".", ms=3,
                label="consumer lag")
        ax.set_ylabel("lag (records)", color="tab:blue", fontsize=8)
        if r.inject_at is not None:
            ax.axvspan(r.inject_at, r.heal_at or r.inject_at + 0.5, color="red", alpha=0.15)
            ax.axvline(r.inject_at, color="red", lw=0.8)
        ax.axvline(r.load_end, color="grey", lw=0.8, ls=":")
        ax2 = ax.twinx()
        vis = [(t, s) for t, s in r.visible if s is not None]
        ax2.plot([t for t, _ in vis], [s for _, s in vis], ".", color="tab:orange", ms=3, label="write→visible")
        ax2.set_ylabel("write→visible (s)", color="tab:orange", fontsize=8)
        ax.set_title(f"{r.fault}: {'ok' if r.ok else 'WRONG'}", fontsize=9)
        ax.set_xlabel("s since load start", fontsize=8)
        ax.tick_params(labelsize=7)
        ax2.tick_params(labelsize=7)
    fig.suptitle("chaos: consumer lag (blue) and write→visible (orange); fault window red, load end dotted",
                 fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.3 / (3.0 * rows)))
    fig.savefig(path, dpi=90)
    plt.close(fig)


def load(path: Path) -> tuple[str, list[Any]]:
    """The command and runs of a saved results.json (as :class:`bench.chaos.run.RunResult`)."""
    from bench.chaos.run import RunResult, recovery

    doc = json.loads(path.read_text())
    runs = [RunResult(**r) for r in doc["runs"]]
    for r in runs:  # derived from the series: recomputed, so saved results get the current definition
        r.recovery_s = recovery([tuple(s) for s in r.lag], r.inject_at, r.heal_at)
    return doc["command"], runs


def main(argv: list[str] | None = None) -> None:
    """``python -m bench.chaos.report RESULTS.json [OUT_DIR]``: render the table and the plot again."""
    import sys

    args = argv if argv is not None else sys.argv[1:]
    command, runs = load(Path(args[0]))
    out = Path(args[1]) if len(args) > 1 else Path(args[0]).parent
    paths = save(runs, out, command)
    print(table(runs))
    print(f"saved {paths['md']} and {paths['png']}")


if __name__ == "__main__":
    main()
