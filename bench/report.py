"""Bench report: statistics, figures with ratios to same-run ceilings, refusal over the error threshold,
machine info, and the JSON, PNG and text outputs.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

SCHEMA = "feedstream-bench/1"
RESULTS_DIR = Path(__file__).resolve().parent / "results"
DEFAULT_ERROR_THRESHOLD = 0.01


@dataclass(frozen=True)
class Sample:
    """One timed operation: when it ended (s since run start), how long it took, and its outcome."""

    t: float
    latency_s: float
    ok: bool
    kind: str = ""


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by linear interpolation between closest ranks."""
    if not values:
        raise ValueError("percentile of no values")
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def latency_ms(latencies_s: Sequence[float]) -> dict[str, float] | None:
    """p50/p95/p99/max in milliseconds, or None without values."""
    if not latencies_s:
        return None
    return {f"p{q}": round(percentile(latencies_s, q) * 1000, 3) for q in (50, 95, 99)} | {
        "max": round(max(latencies_s) * 1000, 3)}


def summarize(samples: Iterable[Sample], duration_s: float) -> dict[str, Any]:
    """Count, errors, error rate, successful ops/s and latency percentiles of successful ops."""
    samples = list(samples)
    ok = [s.latency_s for s in samples if s.ok]
    errors = len(samples) - len(ok)
    return {"count": len(samples), "errors": errors,
            "error_rate": errors / len(samples) if samples else 0.0,
            "duration_s": round(duration_s, 3),
            "rate_per_s": len(ok) / duration_s if duration_s > 0 else 0.0,
            "latency_ms": latency_ms(ok)}


def ceiling(name: str, run_id: str, measured_at: str, stats: Mapping[str, Any], unit: str,
            how: str) -> dict[str, Any]:
    """A ceiling measured in run ``run_id`` at ``measured_at``: its rate and how it was measured."""
    return {"name": name, "run_id": run_id, "measured_at": measured_at, "value": stats["rate_per_s"],
            "unit": unit, "how": how, **{k: stats[k] for k in ("count", "errors", "error_rate",
                                                                "duration_s", "latency_ms") if k in stats}}


def not_available(reason: str) -> dict[str, Any]:
    """A figure the run could not measure, and why."""
    return {"status": "not_available", "reason": reason, "value": None}


def figure(stats: Mapping[str, Any], unit: str, ceilings: Mapping[str, Mapping[str, Any]],
           against: Sequence[str], threshold: float = DEFAULT_ERROR_THRESHOLD) -> dict[str, Any]:
    """A platform figure with its ratios to the named ceilings, or a refusal over the error threshold."""
    out: dict[str, Any] = {k: v for k, v in stats.items() if k != "rate_per_s"}
    if stats["count"] == 0:
        return not_available("no operations completed") | out
    if stats["error_rate"] > threshold:
        return {**out, "status": "refused", "value": None, "latency_ms": None,
                "reason": f"error rate {stats['error_rate']:.2%} ({stats['errors']} of {stats['count']}) "
                          f"is above the {threshold:.1%} threshold: figure not reported"}
    out.update(status="ok", value=stats["rate_per_s"], unit=unit, ratios=[])
    for name in against:
        c = ceilings.get(name)
        if c is None or c.get("value") in (None, 0) or c.get("error_rate", 0) > threshold:
            out["ratios"].append({"ceiling": name, "value": None,
                                  "reason": "ceiling not measured cleanly in this run"})
            continue
        out["ratios"].append({"ceiling": name, "ceiling_value": c["value"], "ceiling_run_id": c["run_id"],
                              "ceiling_measured_at": c["measured_at"],
                              "value": stats["rate_per_s"] / c["value"]})
    return out


def machine_info() -> dict[str, Any]:
    """Cores, memory, CPU model, OS and Python of this machine."""
    model = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cores": os.cpu_count(), "physical_cores": psutil.cpu_count(logical=False),
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1), "cpu_model": model,
            "os": platform.platform(), "python": sys.version.split()[0],
            "hostname": platform.node()}


def git_info(repo: Path) -> dict[str, Any]:
    """The commit the bench ran at, and whether the tree had local changes."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True,
                              timeout=10, check=False).stdout.strip()
    return {"commit": git("rev-parse", "HEAD") or None,
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def _fmt_ratio(r: Mapping[str, Any]) -> str:
    return f"{r['value']:.3g} x {r['ceiling']}" if r.get("value") is not None else f"n/a vs {r['ceiling']}"


def summary_text(report: Mapping[str, Any]) -> str:
    """A short human summary: ceilings, figures with ratios (or why not), scale model."""
    m = report["machine"]
    lines = [f"feedstream bench --scenario {report['scenario']}  run {report['run_id']}",
             (f"{report['started_at']}  commit {(report['git'].get('commit') or '?')[:10]}"
             f"{' (dirty)' if report['git'].get('dirty') else ''}  {m['cores']} cores, "
             f"{m['memory_gb']} GB, {m['cpu_model']}, Python {m['python']}"),
             f"error threshold {report['error_threshold']:.1%}", "", "Ceilings (same run):"]
    for c in report["ceilings"].values():
        lat = c.get("latency_ms") or {}
        lines.append(f"  {c['name']:<24} {c['value']:>12,.0f} {c['unit']}"
                     + (f"   p50 {lat['p50']:.2f} ms p99 {lat['p99']:.2f} ms" if lat else ""))
    lines += ["", "Platform figures:"]
    for name, f in report["figures"].items():
        if f["status"] != "ok":
            lines.append(f"  {name:<24} {f['status'].upper()}: {f['reason']}")
            continue
        lat = f.get("latency_ms")
        lat_s = (f"   p50 {lat['p50']:.1f} p95 {lat['p95']:.1f} p99 {lat['p99']:.1f} max {lat['max']:.1f} ms"
                 if lat else "")
        ratios = "; ".join(_fmt_ratio(r) for r in f.get("ratios", []))
        value = f"{f['value']:>12,.1f} {f['unit']}" if f.get("value") is not None else " " * 12
        lines.append(f"  {name:<24} {value}{lat_s}" + (f"   [{ratios}]" if ratios else ""))
    res = report.get("resources") or {}
    if res:
        lines += ["", "Resources (whole run):"]
        for proc, r in res.items():
            lines.append(f"  {proc:<24} cpu mean {r['cpu_mean_pct']:6.1f}% max {r['cpu_max_pct']:6.1f}%"
                         f"   rss max {r['rss_max_mb']:8.1f} MiB")
    scale = report.get("scale")
    if scale:
        t = scale["targets"]
        lines += ["", (f"Scale model (targets {t['posts_per_s']:,.0f} posts/s, {t['writes_per_s']:,.0f} writes/s, "
                      f"{t['feed_reads_per_s']:,.0f} feed reads/s, feed p99 < {t['feed_p99_ms']:g} ms):")]
        for line in scale["lines"]:
            lines.append(f"  {line['component']:<30} {line['units'] if line['units'] else '-':>6}   "
                         f"{line['arithmetic']}")
        p = scale["feed_p99"]
        lines.append(f"  feed p99: {p['verdict']} (measured {p['measured_ms']} ms, target {p['target_ms']} ms)")
    for note in report.get("notes", []):
        lines.append(f"note: {note}")
    return "\n".join(lines) + "\n"


def plot(report: Mapping[str, Any], path: Path) -> None:
    """PNG: latency percentiles over time (top) and throughput over time (bottom)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = report.get("timeseries", {})
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(11, 7.5), sharex=True)
    for name, s in series.get("latency_ms", {}).items():
        for q, style in (("p50", "-"), ("p99", "--")):
            if s.get(q):
                ax1.plot(s["t"], s[q], style, label=f"{name} {q}")
    ax1.set_ylabel("latency (ms)")
    ax1.set_yscale("log")
    ax1.set_title(f"feedstream bench --scenario {report['scenario']} ({report['started_at']}, "
                  f"{report['machine']['cores']} cores)")
    for name, s in series.get("rate_per_s", {}).items():
        if any(s["v"]):
            ax2.plot(s["t"], s["v"], label=name)
    ax2.set_ylabel("ops / s")
    ax2.set_xlabel("seconds since start of run")
    for phase in report.get("phases", []):
        for ax in (ax1, ax2):
            ax.axvspan(phase["start_s"], phase["end_s"], alpha=0.06, color="grey")
        ax2.annotate(phase["name"], (phase["start_s"], 0), xycoords=("data", "axes fraction"),
                     fontsize=7, va="bottom")
    for ax in (ax1, ax2):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="upper left", ncol=3)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def bucket_series(samples: Sequence[Sample], width_s: float = 1.0) -> dict[str, dict[str, list[float]]]:
    """Per-kind, per-bucket p50/p99 latency (ms) and successful ops/s."""
    kinds: dict[str, dict[int, list[float]]] = {}
    for s in samples:
        if s.ok:
            kinds.setdefault(s.kind, {}).setdefault(int(s.t // width_s), []).append(s.latency_s)
    lat, rate = {}, {}
    for kind, buckets in kinds.items():
        keys = sorted(buckets)
        t = [k * width_s for k in keys]
        lat[kind] = {"t": t, "p50": [percentile(buckets[k], 50) * 1000 for k in keys],
                     "p99": [percentile(buckets[k], 99) * 1000 for k in keys]}
        rate[kind] = {"t": t, "v": [len(buckets[k]) / width_s for k in keys]}
    return {"latency_ms": lat, "rate_per_s": rate}


def save(report: Mapping[str, Any], out_dir: Path = RESULTS_DIR) -> dict[str, Path]:
    """Write JSON, PNG and summary for the run, and copy them to ``latest.*``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{report['started_at'].replace(':', '').replace('-', '')[:15]}-{report['scenario']}"
    paths = {"json": out_dir / f"{stem}.json", "png": out_dir / f"{stem}.png", "txt": out_dir / f"{stem}.txt"}
    paths["json"].write_text(json.dumps(report, indent=1, default=str))
    plot(report, paths["png"])
    paths["txt"].write_text(summary_text(report))
    for ext, p in list(paths.items()):
        latest = out_dir / f"latest.{ext}"
        shutil.copyfile(p, latest)
        paths[f"latest_{ext}"] = latest
    return paths


def check_well_formed(report: Mapping[str, Any]) -> list[str]:
    """Problems with a report: missing sections, ratios not against a ceiling of this very run."""
    problems = []
    for key in ("schema", "run_id", "scenario", "started_at", "finished_at", "machine", "git", "ceilings",
                "figures", "error_threshold"):
        if key not in report:
            problems.append(f"missing {key}")
    if problems:
        return problems
    for name, c in report["ceilings"].items():
        if c["run_id"] != report["run_id"]:
            problems.append(f"ceiling {name} is from run {c['run_id']}, not {report['run_id']}")
        if not report["started_at"] <= c["measured_at"] <= report["finished_at"]:
            problems.append(f"ceiling {name} measured at {c['measured_at']}, outside the run")
    for name, f in report["figures"].items():
        if f.get("status") not in ("ok", "refused", "not_available"):
            problems.append(f"figure {name} has status {f.get('status')!r}")
        if f.get("status") == "refused" and f.get("value") is not None:
            problems.append(f"figure {name} is refused but reports a value")
        if f.get("status") == "ok" and f.get("error_rate", 0) > report["error_threshold"]:
            problems.append(f"figure {name} is reported above the error threshold")
        for r in f.get("ratios", []):
            if r.get("value") is None:
                continue
            c = report["ceilings"].get(r["ceiling"])
            if c is None:
                problems.append(f"figure {name}: ratio against unknown ceiling {r['ceiling']}")
            elif (r["ceiling_run_id"], r["ceiling_measured_at"], r["ceiling_value"]) != \
                    (c["run_id"], c["measured_at"], c["value"]):
                problems.append(f"figure {name}: ratio against {r['ceiling']} of another measurement")
            elif abs(r["value"] - f["value"] / c["value"]) > 1e-9 * max(1.0, abs(r["value"])):
                problems.append(f"figure {name}: ratio {r['value']} != {f['value']} / {c['value']}")
    return problems
