"""``feedstream up``: the main job — engines, topics, topologies, API and demo data."""

from __future__ import annotations

import typer
from rich.console import Console

from core.settings import get_settings
from ops import platform
from ops.local import LocalStackError

NAME = "up"
console = Console(highlight=False)


def command(
    demo_data: bool = typer.Option(True, "--demo-data/--no-demo-data",
                                   help="load the demo world (users, posts, follows) if it is not loaded yet"),
    seed: bool | None = typer.Option(None, "--seed/--no-seed", hidden=True,
                                     help="the old name of --demo-data/--no-demo-data"),
    monitoring: bool = typer.Option(False, "--monitoring",
                                    help="also start a local Prometheus that scrapes every process"),
) -> None:
    """Start everything: the local engines, topics and schemas, topologies, the API and demo data.

    Idempotent: what is already running is left alone. Stop it all with `feedstream down`.
    """
    try:
        platform.up(get_settings(), seed=demo_data if seed is None else seed, monitoring=monitoring,
                    echo=console.print)
    except LocalStackError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
