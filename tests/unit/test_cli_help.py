"""What an outside review of every ``--help`` asked for: a version, honest group help, no reST markup."""

from __future__ import annotations

import click
import typer.main
from typer.testing import CliRunner

from feedstream.cli import app, version

RUNNER = CliRunner()


def _commands(group: click.Command, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = [path]
    if isinstance(group, click.Group):
        for name, cmd in group.commands.items():
            out += _commands(cmd, (*path, name))
    return out


def test_version() -> None:
    r = RUNNER.invoke(app, ["--version"])
    assert r.exit_code == 0 and r.output.strip() == f"feedstream {version()}" and version() != "unknown"


def test_no_help_shows_literal_rest_backticks() -> None:
    root = typer.main.get_command(app)
    for path in _commands(root):
        r = RUNNER.invoke(app, [*path, "--help"], terminal_width=200)
        assert r.exit_code == 0, (path, r.output)
        assert "``" not in r.output, f"{' '.join(path)} --help shows reST markup"


def test_topology_help_names_its_commands_and_every_topology() -> None:
    out = RUNNER.invoke(app, ["topology", "--help"], terminal_width=200).output
    assert "inspect" not in out
    for word in ("list", "run", "health", "replay", "users", "trending", "graph", "fanout", "engagement"):
        assert word in out, word


def test_up_loads_demo_data_under_a_name_seed_does_not_use() -> None:
    up = RUNNER.invoke(app, ["up", "--help"], terminal_width=200).output
    seed = RUNNER.invoke(app, ["seed", "--help"], terminal_width=200).output
    assert "--demo-data" in up and "--seed" not in up and "--monitoring" in up
    assert "--random-seed" in seed
