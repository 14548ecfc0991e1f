"""``feedstream local``: run the single-node stack of real engines as local processes."""

from __future__ import annotations

import subprocess
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from core.settings import get_settings
from ops.local import ENGINE_NAMES, LocalStackError, jars, stack
from ops.local.engines import ENGINES

NAME = "local"
app = typer.Typer(help="Run the local stack: Kafka (KRaft), Cassandra, Redis, Apicurio Registry, and on request "
                       "Prometheus (monitoring).",
                  no_args_is_help=True)
console = Console(highlight=False)
Engines = Annotated[list[str] | None, typer.Argument(
    help=f"engines to act on, of {', '.join(ENGINE_NAMES)} (default: all but monitoring, which starts only "
         "when named)", show_default=False)]


def _fail(exc: Exception) -> None:
    console.print(f"[red]error:[/red] {exc}")
    raise typer.Exit(1)


@app.command()
def fetch() -> None:
    """Fetch the engines' jars (Kafka, Cassandra, Flink connectors, Apicurio, OpenSearch) from Maven
    Central, and build the engines shipped as Go modules (MinIO) once."""
    try:
        settings = get_settings()
        for name, path in jars.fetch_all(settings.cache_dir, echo=console.print).items():
            console.print(f"{name}: {len(list(path.rglob('*.jar')))} jars in {path}")
        for engine in ENGINES.values():
            if engine.prepare is not None:
                console.print(f"{engine.name}: {engine.prepare(settings, console.print)}")
    except LocalStackError as exc:
        _fail(exc)


@app.command()
def up(engines: Engines = None) -> None:
    """Start the engines and wait until each passes its health check (a no-op if already up).

    Ports, heaps and the state directory come from FEEDSTREAM_* environment variables,
    e.g. FEEDSTREAM_KAFKA_PORT=19092 or FEEDSTREAM_STATE_DIR=/tmp/fs.
    """
    try:
        stack.up(get_settings(), engines, echo=console.print)
    except LocalStackError as exc:
        _fail(exc)
    _print_status(engines)


@app.command()
def down(engines: Engines = None) -> None:
    """Stop the engines this stack started (found by pid file); leaves others alone."""
    stack.down(get_settings(), engines, echo=console.print)


def _print_status(engines: list[str] | None) -> bool:
    table = Table("engine", "pid", "port", "health", "uptime", "RSS")
    all_ok = True
    for st in stack.status(get_settings(), engines):
        all_ok &= st.healthy
        table.add_row(
            st.name, str(st.pid or "-"), str(st.port),
            "[green]healthy[/green]" if st.healthy else ("[yellow]unhealthy[/yellow]" if st.pid else "[dim]stopped[/dim]"),
            f"{st.uptime_s:.0f}s" if st.uptime_s is not None else "-",
            f"{st.rss_bytes / 2**20:.0f} MiB" if st.rss_bytes else "-",
        )
    console.print(table)
    return all_ok


@app.command()
def status(engines: Engines = None) -> None:
    """Show each engine's pid, port, health, uptime and RSS; exit 1 if any is not healthy."""
    if not _print_status(engines):
        raise typer.Exit(1)


@app.command()
def logs(
    engine: Annotated[str, typer.Argument(help=f"one of {', '.join(ENGINE_NAMES)}")],
    lines: Annotated[int, typer.Option("-n", "--lines", help="lines to show")] = 50,
    follow: Annotated[bool, typer.Option("-f", "--follow", help="keep following")] = False,
) -> None:
    """Tail an engine's log."""
    if engine not in ENGINE_NAMES:
        _fail(LocalStackError(f"unknown engine {engine!r}; choose from {', '.join(ENGINE_NAMES)}"))
    path = stack.log_path(get_settings(), engine)
    if not path.exists():
        _fail(LocalStackError(f"no log yet at {path}; start it with `feedstream local up {engine}`"))
    subprocess.run(["tail", f"-n{lines}", *(["-F"] if follow else []), str(path)])
