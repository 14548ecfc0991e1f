"""``feedstream status``: engines, platform services and topology lag in one view."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from core.settings import get_settings
from ops import platform
from ops.lag import live_lag, topology_lag
from ops.local import stack

NAME = "status"
console = Console(highlight=False)


def _fmt(st: stack.EngineStatus) -> list[str]:
    health = ("[green]healthy[/green]" if st.healthy
              else "[yellow]unhealthy[/yellow]" if st.pid else "[dim]stopped[/dim]")
    return [st.name, str(st.pid or "-"), str(st.port or "-"), health,
            f"{st.uptime_s:.0f}s" if st.uptime_s is not None else "-",
            f"{st.rss_bytes / 2**20:.0f} MiB" if st.rss_bytes else "-",
            str(st.restarts) if st.restarts is not None else "-"]


def command() -> None:
    """Show engines and services (pid, port, health, uptime, RSS, restarts) and each topology's lag.

    Lag is shown twice: from the consumer groups' committed offsets (every topology, the trending
    job included), and as each process publishes it on its /metrics, what Prometheus scrapes (the
    workers' ``feedstream_consumer_lag``, the trending job's Flink source ``pendingRecords``).

    Exits 1 if an engine or service is not healthy.
    """
    s = get_settings()
    table = Table("process", "pid", "port", "health", "uptime", "RSS", "restarts")
    rows = [*stack.status(s), *platform.status(s)]
    for st in rows:
        table.add_row(*_fmt(st))
    console.print(table)
    try:
        lags = topology_lag(s)
        lag_table = Table("topology", "consumer group", "committed", "end", "lag (records)",
                          "lag (its /metrics)")
        for lag in lags:
            live = live_lag(s, lag.topology)  # a worker's consumer lag; the trending job's Flink pendingRecords
            lag_table.add_row(lag.topology, lag.group, str(lag.committed), str(lag.end), str(lag.lag),
                              "-" if live is None else f"{live:.0f}")
        console.print(lag_table)
    except Exception as exc:  # Kafka down: the table above already says so
        console.print(f"[yellow]lag unavailable:[/yellow] {exc}")
    if not all(r.healthy for r in rows):
        raise typer.Exit(1)
