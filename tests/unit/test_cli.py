"""Every CLI command answers --help, and the local-stack errors say what to do."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from feedstream.cli import app
from ops.local import LocalStackError, prereqs

runner = CliRunner()


def _commands(group, prefix=()):
    import typer.main

    click_cmd = typer.main.get_command(group)
    stack = [(prefix, click_cmd)]
    while stack:
        path, cmd = stack.pop()
        yield path
        for name, sub in getattr(cmd, "commands", {}).items():
            stack.append((path + (name,), sub))


def test_every_command_has_help() -> None:
    paths = list(_commands(app))
    assert ("local", "up") in paths and ("local", "logs") in paths
    for path in paths:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage" in result.output


def test_missing_program_is_named_with_a_hint(monkeypatch) -> None:
    monkeypatch.setattr(prereqs.shutil, "which", lambda p: None if p == "redis-server" else "/usr/bin/" + p)
    with pytest.raises(LocalStackError, match=r"`redis-server` not found: install Redis"):
        prereqs.ensure(["java", "redis-server"], install=False)


def test_unknown_engine_for_logs() -> None:
    result = runner.invoke(app, ["local", "logs", "nosuch"])
    assert result.exit_code == 1
    assert "unknown engine 'nosuch'" in result.output
