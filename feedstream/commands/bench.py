"""``feedstream bench``: run a bounded benchmark scenario against the running stack."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer
from rich.console import Console

NAME = "bench"
console = Console(highlight=False)


def command(
    scenario: str = typer.Option("smoke", help="smoke (< 2 min), standard (~3 min), capacity (~5 min), "
                                 "topologies (one worker per topology draining a backlog, ~10 min) or "
                                 "obs-cost (~3 min: API metrics on/off and tracing, side by side) or media (~5 min: "
                                 "images and video through the media worker vs raw Pillow/ffmpeg/PUT)"),
    out: Path = typer.Option(None, help="results directory (default: bench/results)"),
    error_threshold: float = typer.Option(None, help="refuse figures whose error rate is above this (0.01 = 1%)"),
    server: str = typer.Option("uvicorn", help="capacity only: the API's ASGI server, uvicorn or granian"),
    size: int = typer.Option(3000, help="topologies: backlog events per topology"),
) -> None:
    """Measure ceilings and platform figures in one run; write JSON, a PNG plot and a text summary."""
    from dataclasses import replace

    from bench import report
    from bench.harness import SCENARIOS, run
    from bench.http_load import WrkError
    from core.settings import get_settings
    from ops.seed import SeedError

    if scenario == "capacity":  # per-endpoint saturation on its own API process (bench/capacity.py)
        from bench import capacity

        args = capacity.parser().parse_args(["--out", str(out or report.RESULTS_DIR), "--server", server])
        capacity.run(args, echo=console.print)
        return
    if scenario == "topologies":  # per-topology drains against same-run ceilings (bench/topologies.py)
        import json

        from bench import topologies

        result = topologies.run(get_settings(), size=size, echo=console.print)
        path = (out or report.RESULTS_DIR) / "topologies.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2, default=str))
        typer.echo(json.dumps(result["summary"], indent=2))
        console.print(f"json: {path}")
        return
    if scenario == "obs-cost":  # metrics and tracing cost, A/B in one run (bench/obs_cost.py)
        from bench import obs_cost

        obs_cost.run(obs_cost.parser().parse_args(["--out", str(out or report.RESULTS_DIR)]), echo=console.print)
        return
    if scenario == "media":  # uploads through one media worker vs same-run raw ceilings (bench/media.py)
        from bench import media

        media.main(["--out", str(out or report.RESULTS_DIR)], echo=console.print)
        return
    if scenario not in SCENARIOS:
        console.print(f"[red]error:[/red] unknown scenario {scenario!r}; choose from {sorted(SCENARIOS)}")
        raise typer.Exit(2)
    sc = SCENARIOS[scenario]
    if error_threshold is not None:
        sc = replace(sc, error_threshold=error_threshold)
    try:
        result = asyncio.run(run(get_settings(), sc, echo=console.print))
    except (SeedError, WrkError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    paths = report.save(result, out or report.RESULTS_DIR)
    typer.echo(report.summary_text(result))
    for kind in ("json", "png", "txt"):
        console.print(f"{kind}: {paths[kind]}  (also {paths['latest_' + kind].name})")
    problems = report.check_well_formed(result)
    if problems:
        console.print(f"[red]report problems:[/red] {problems}")
        raise typer.Exit(1)
