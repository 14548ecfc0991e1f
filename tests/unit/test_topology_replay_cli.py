"""``feedstream topology replay``: asks before touching anything, and dispatches to the right helper."""

from __future__ import annotations

from typer.testing import CliRunner

from feedstream.cli import app
from topologies import replay as rp

runner = CliRunner()


def test_replay_asks_first_and_does_nothing_when_declined(monkeypatch) -> None:
    called: list = []
    monkeypatch.setattr(rp, "reset_group_offsets", lambda *a, **k: called.append(a) or {})
    result = runner.invoke(app, ["topology", "replay", "fanout"], input="n\n")
    assert result.exit_code == 1 and called == []
    assert "reset group feedstream-fanout to the start of posts.v1?" in result.output


def test_replay_yes_resets_the_group_of_the_named_topology(monkeypatch) -> None:
    called: list = []

    def reset(settings, name, *, suffix=""):
        called.append((name, suffix))
        return {0: 0, 1: 5, 2: 0}

    monkeypatch.setattr(rp, "reset_group_offsets", reset)
    result = runner.invoke(app, ["topology", "replay", "graph", "--yes", "--group-suffix", "-x"])
    assert result.exit_code == 0, result.output
    assert called == [("graph", "-x")]
    assert "p0->0, p1->5, p2->0" in result.output and "topology run graph" in result.output


def test_replay_refusal_is_an_error_exit(monkeypatch) -> None:
    from streams.errors import StreamsError

    def reset(settings, name, *, suffix=""):
        raise StreamsError("group feedstream-fanout has 1 active member(s): stop its workers first")

    monkeypatch.setattr(rp, "reset_group_offsets", reset)
    result = runner.invoke(app, ["topology", "replay", "fanout", "--yes"])
    assert result.exit_code == 1 and "stop its workers first" in result.output
