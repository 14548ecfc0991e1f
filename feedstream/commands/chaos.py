"""``feedstream chaos``: one fault per run under a mixed write load, then every view verified from the log."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

NAME = "chaos"
console = Console(highlight=False)
SHORT = "kill-fanout,kill-engagement,kill-redis"


def command(
    faults: Annotated[str, typer.Option(help=f"comma-separated faults, 'all', or 'short' ({SHORT}); see --list")
                      ] = "all",
    duration: Annotated[float, typer.Option(min=5, max=600, help="seconds of write load per fault")] = 45.0,
    rate: Annotated[float, typer.Option(min=1, max=200, help="writes per second (open loop)")] = 12.0,
    users: Annotated[int, typer.Option(min=4, max=500, help="synthetic users per run")] = 24,
    out: Annotated[Path | None, typer.Option(help="results (results.md/json, chaos.png) and, with the own "
                                                  "platform, its state dir (default .feedstream/chaos)")] = None,
    use_running: Annotated[bool, typer.Option(help="use the platform of FEEDSTREAM_* (no Toxiproxy, no network "
                                                   "faults) instead of starting one")] = False,
    stall: Annotated[float, typer.Option(help="seconds of the SIGSTOP stall")] = 20.0,
    net: Annotated[float, typer.Option(help="seconds each network toxic stays on")] = 15.0,
    list_faults: Annotated[bool, typer.Option("--list", help="list the faults and exit")] = False,
) -> None:
    """Run each fault once under a write load and verify every view against the log read from offset 0.

    The platform is its own (free loopback ports, state under --out) and is stopped at the end.

    Bounded: per fault --duration s of load, at most 600 s to consumer lag 0, then the checks.

    Exits 1 if anything acknowledged is missing or doubled, or any view is wrong (docs/reliability.md).
    """
    from bench.chaos import report
    from bench.chaos.faults import catalog
    from bench.chaos.run import suite

    known = catalog(stall_s=stall, net_s=net)
    if list_faults:
        for name, f in known.items():
            typer.echo(f"{name:<26} {f.what}")
        return
    names = list(known) if faults == "all" else SHORT.split(",") if faults == "short" else \
        [f.strip() for f in faults.split(",") if f.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        console.print(f"[red]error:[/red] unknown fault(s) {unknown}; see `feedstream chaos --list`")
        raise typer.Exit(2)
    out = (out or Path(".feedstream/chaos")).resolve()
    cmd = "python -m feedstream.cli " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    results = suite(names, duration_s=duration, rate=rate, users=users, out=out, own=not use_running,
                    stall_s=stall, net_s=net, echo=lambda m: console.print(m, markup=False),
                    on_result=lambda rs: report.save(rs, out, cmd))
    paths = report.save(results, out, cmd)
    typer.echo(report.table(results))
    console.print(f"saved {paths['md']}, {paths['json']}, {paths['png']}")
    if len(results) < len(names) or not all(r.ok for r in results):
        raise typer.Exit(1)
