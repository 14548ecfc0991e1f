"""``feedstream topology``: run a topology worker in the foreground."""

from __future__ import annotations

import importlib
from enum import Enum
from typing import Annotated

import typer

from feedstream.settings import get_settings

NAME = "topology"
app = typer.Typer(help="Run, replay and inspect topologies (graph, fanout, engagement, trending).",
                  no_args_is_help=True)


class TopologyName(str, Enum):
    graph = "graph"
    fanout = "fanout"
    engagement = "engagement"
    trending = "trending"
    users = "users"


@app.command()
def run(name: Annotated[TopologyName, typer.Argument(help="which topology")]) -> None:
    """Run one topology worker in the foreground until interrupted (Ctrl-C).

    Each topology lives in ``topologies/<name>/app.py`` and exposes ``run(settings)``.
    """
    try:
        module = importlib.import_module(f"topologies.{name.value}.app")
    except ModuleNotFoundError as exc:
        typer.echo(f"error: topology {name.value!r} is not built yet ({exc})", err=True)
        raise typer.Exit(2) from exc
    module.run(get_settings())
