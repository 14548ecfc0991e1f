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
    seed: bool = typer.Option(True, help="load the demo world if it is not loaded yet"),
) -> None:
    """Start everything: the local engines, topics and schemas, topologies, the API and demo data.

    Idempotent: what is already running is left alone. Stop it all with `feedstream down`.
    """
    try:
        platform.up(get_settings(), seed=seed, echo=console.print)
    except LocalStackError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
