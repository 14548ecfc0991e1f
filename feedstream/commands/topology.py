"""``feedstream topology``: run a topology worker in the foreground, or replay one from offset 0."""

from __future__ import annotations

import importlib
from enum import Enum
from typing import Annotated

import typer

from core.settings import get_settings

NAME = "topology"
app = typer.Typer(help="List, run, health-check and replay topologies (graph, fanout, engagement, users, search, "
                       "trending, moderation, media).", no_args_is_help=True)


class TopologyName(str, Enum):
    graph = "graph"
    fanout = "fanout"
    engagement = "engagement"
    trending = "trending"
    users = "users"
    search = "search"
    moderation = "moderation"
    media = "media"


@app.command()
def run(name: Annotated[TopologyName, typer.Argument(help="which topology")]) -> None:
    """Run one topology worker in the foreground until interrupted (Ctrl-C).

    Each topology lives in topologies/NAME/app.py and exposes run(settings). The worker serves
    /metrics, /livez and /readyz on its metrics port (FEEDSTREAM_WORKER_METRICS_PORT).
    """
    try:
        module = importlib.import_module(f"topologies.{name.value}.app")
    except ModuleNotFoundError as exc:
        typer.echo(f"error: topology {name.value!r} is not built yet ({exc})", err=True)
        raise typer.Exit(2) from exc
    module.run(get_settings())


@app.command()
def health(
    name: Annotated[TopologyName, typer.Argument(help="which topology worker")],
    max_age: Annotated[float, typer.Option(help="seconds a heartbeat stays fresh")] = 60.0,
) -> None:
    """Exit 0 if the worker's heartbeat is fresh (it is alive and making progress), else 1.

    The heartbeat-file check (python -m topologies.health is the same check without the CLI's
    imports); Kubernetes probes the worker's /livez instead.
    """
    from topologies import health as worker_health

    raise typer.Exit(worker_health.main([name.value, "--max-age", str(max_age),
                                         "--state-dir", str(get_settings().state_dir)]))


class ReplayName(str, Enum):
    graph = "graph"
    fanout = "fanout"
    search = "search"


@app.command()
def replay(
    name: Annotated[ReplayName, typer.Argument(help="which topology to replay (graph, fanout or search: "
                                                    "search rebuilds a fresh index, then swaps the alias)")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do it without asking")] = False,
    in_process: Annotated[bool, typer.Option(
        "--in-process", help="instead of resetting the group, apply graph.v1 and posts.v1 from offset 0 "
                             "here, merged in timestamp order, into the configured (wiped) stores")] = False,
    group_suffix: Annotated[str, typer.Option(help="suffix of the worker's group id "
                                                   "(FEEDSTREAM_TOPOLOGY_GROUP_SUFFIX)")] = "",
) -> None:
    """Replay a topology from offset 0 (idempotent: the same events leave the same timelines).

    By default, resets the committed offsets of the stopped worker group feedstream-NAME to the
    start of its source topic, so the next `feedstream topology run NAME` re-applies the whole log.
    Stop the topology's workers first: a group with active members is refused.

    With --in-process, rebuilds graph and timelines together in this process (both topics, in
    timestamp order, exactly reproducing bounded back-fills) and exits when caught up.
    """
    from topologies import replay as rp

    settings = get_settings()
    if name is ReplayName.search:
        _replay_search(yes)
        return
    if in_process:
        what = (f"apply graph.v1 and posts.v1 from offset 0 to keyspace {settings.keyspace!r} "
                f"and Redis {settings.redis_url}")
    else:
        what = f"reset group {rp.group_id(name.value, group_suffix)} to the start of {rp.SOURCES[name.value]}"
    if not yes and not typer.confirm(f"{what}?"):
        raise typer.Exit(1)
    if in_process:
        from core.settings import Settings

        stats = rp.replay_in_order(settings, Settings())
        typer.echo(f"replayed {stats.records} records ({stats.graph} graph, {stats.posts} posts, "
                   f"{stats.skipped} skipped) in {stats.seconds:.1f}s")
        return
    try:
        lows = rp.reset_group_offsets(settings, name.value, suffix=group_suffix)
    except Exception as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"{what}: " + ", ".join(f"p{p}->{o}" for p, o in sorted(lows.items())))
    typer.echo(f"now run: feedstream topology run {name.value}")


@app.command("list")
def list_() -> None:
    """Show every topology with its state, lag, throughput and restarts.

    State and restarts come from the processes `feedstream up` runs; lag from the consumer groups'
    committed offsets (the trending job's too); throughput from the workers' /metrics (events
    applied per second over one second).
    """
    from rich.console import Console
    from rich.table import Table

    from ops.topologies import overview

    table = Table("topology", "state", "lag (records)", "events/s", "restarts", "metrics")
    for row in overview(get_settings()):
        table.add_row(row.name, row.state, "-" if row.lag is None else str(row.lag),
                      "-" if row.throughput is None else f"{row.throughput:.1f}",
                      "-" if row.restarts is None else str(row.restarts), row.target or "-")
    Console(highlight=False).print(table)


def _replay_search(yes: bool) -> None:
    from topologies.search.replay import rebuild

    settings = get_settings()
    if not yes and not typer.confirm(f"rebuild {settings.search_alias!r} from users.v1, posts.v1 and "
                                     "engagement-counts.v1 into a fresh index, then swap the alias?"):
        raise typer.Exit(1)
    st = rebuild(settings)
    typer.echo(f"rebuilt {st.index} from {st.records} records ({st.skipped} skipped, {st.caught_up} caught up "
               f"after the swap) in {st.seconds:.1f}s; alias {settings.search_alias} -> {st.index}; "
               f"dropped {', '.join(st.old) or 'nothing'}")
