"""The ``feedstream`` command line: mounts every group found in :mod:`feedstream.commands`."""

from __future__ import annotations

import importlib
import pkgutil

import typer

import feedstream.commands as _commands

app = typer.Typer(
    help="feedstream: run the local stack, topics, topologies, API, demo data and benchmarks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def version() -> str:
    """The installed feedstream version (the project's, when run from a checkout)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("feedstream")
    except PackageNotFoundError:
        return "unknown"


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"feedstream {version()}")
        raise typer.Exit()


@app.callback()
def _options(
    show_version: bool = typer.Option(False, "--version", help="print the version and exit",
                                      callback=_show_version, is_eager=True),
) -> None:
    """feedstream: run the local stack, topics, topologies, API, demo data and benchmarks."""


def _mount() -> None:
    for info in sorted(pkgutil.iter_modules(_commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{_commands.__name__}.{info.name}")
        group = getattr(module, "app", None)
        if isinstance(group, typer.Typer):
            app.add_typer(group, name=getattr(module, "NAME", info.name))
        command = getattr(module, "command", None)
        if callable(command):
            app.command(name=getattr(module, "NAME", info.name))(command)


_mount()


def main() -> None:
    """Entry point of the ``feedstream`` script."""
    app()


if __name__ == "__main__":
    main()
