"""``feedstream topics describe`` and ``feedstream topology list`` against the live test stack."""

from __future__ import annotations

import uuid
from pathlib import Path

from support.wait import wait_until
from typer.testing import CliRunner

from core.events import post_created
from core.settings import Settings
from feedstream.cli import app
from ops import workers
from streams.admin import apply_all
from streams.producer import EventProducer
from topologies.metrics import read_target

RUNNER = CliRunner()


def _cells(line: str) -> list[str]:
    """The cells of a row of a rich table (box-drawing borders dropped)."""
    return [c for c in line.translate({ord(ch): " " for ch in "│┃║|"}).split() if c]


def _cli(*args: str) -> str:
    r = RUNNER.invoke(app, list(args), env={"COLUMNS": "200"}, terminal_width=200)
    assert r.exit_code == 0, r.output
    return r.output


def test_topics_describe_shows_key_partitions_retention_schemas_and_the_newest_record(stack: Settings) -> None:
    apply_all(stack, echo=lambda *_: None)
    author = f"d{uuid.uuid4().hex[:10]}"
    record, value = post_created(author, "describe me")
    with EventProducer(stack) as producer:
        producer.send(record, value)
    out = _cli("topics", "describe", "posts.v1")
    assert "key:         author_id" in out
    assert f"partitions:  {stack.topic_partitions} in the catalog, {stack.topic_partitions} on the broker" in out
    assert "retention" in out and "io.feedstream.events.PostCreated" in out
    assert "post_id: long" in out and "occurred_at: long (timestamp-millis)" in out
    assert "sample:      PostCreated" in out and author in out and "describe me" in out
    assert RUNNER.invoke(app, ["topics", "describe", "nope.v1"]).exit_code == 2


def test_topology_list_shows_state_lag_throughput_and_restarts(stack: Settings, tmp_path: Path) -> None:
    apply_all(stack, echo=lambda *_: None)
    proc = workers.start_worker(stack, "users", tmp_path / "users.log", worker_metrics_port=0,
                                topology_group_suffix=f"-cli{uuid.uuid4().hex[:6]}")
    try:
        wait_until(lambda: read_target(stack.state_dir, "topology", "users"), 120)

        last: list[str] = [""]

        def users_live() -> str | None:
            last[0] = out = _cli("topology", "list")
            return out if any(_cells(line)[:2] == ["users", "live"] for line in out.splitlines()) else None

        try:
            out = wait_until(users_live, 180, interval_s=2)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last output:\n{last[0]}") from None
    finally:
        workers.stop_workers([proc])
    rows = {_cells(line)[0]: _cells(line) for line in out.splitlines() if _cells(line)
            and _cells(line)[0] in ("graph", "fanout", "engagement", "users", "trending")}
    assert set(rows) == {"graph", "fanout", "engagement", "users", "trending"}
    assert rows["graph"][1] == "stopped"  # nothing runs it in this test
    assert rows["users"][2].isdigit()  # lag from the group's offsets
    assert rows["users"][3].replace(".", "").isdigit()  # events/s from its /metrics
    assert "state" in out and "lag" in out and "events/s" in out and "restarts" in out
