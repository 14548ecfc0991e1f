"""``feedstream seed``: load the demo world through the API, with a progress bar."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

NAME = "seed"
console = Console(highlight=False)


def command(
    force: bool = typer.Option(False, help="load again even if the marker says the world is loaded"),
    users: int = typer.Option(200, help="users in the world"),
    seed: int = typer.Option(42, "--random-seed", "--seed", help="random seed of the world (the same seed builds the same world)"),
) -> None:
    """Load a demo-sized world (power-law follows, celebrities, posts, engagements) through the public API."""
    from dataclasses import replace

    from core.settings import get_settings
    from ops import seed as seeding

    cfg = replace(seeding.DEMO, users=users, seed=seed)
    with Progress(TextColumn("{task.description:<10}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console) as bar:
        tasks: dict[str, int] = {}

        def progress(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(phase, total=total)
            bar.update(tasks[phase], completed=done)

        try:
            res = seeding.seed(get_settings(), cfg, progress=progress, force=force)
        except seeding.SeedError as exc:
            console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(1) from exc
    if res.get("already_loaded"):
        console.print(f"demo world already loaded at {res['loaded_at']} (use --force to load again)")
    else:
        c = res["counts"]
        console.print(f"loaded {c['register']} users, {c['follow']} follows, {c['post']} posts, "
                      f"{c['engage']} engagements in {res['took_s']}s")
