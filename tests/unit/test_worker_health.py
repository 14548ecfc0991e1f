"""A worker's liveness means progress: heartbeat, progress monitor and the probe's check (#14 item 17)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from core.settings import Settings
from topologies import faust_runtime as rt
from topologies import health

REPO = Path(__file__).resolve().parents[2]


def test_fresh_heartbeat_is_healthy_and_stale_or_missing_is_not(tmp_path: Path) -> None:
    path = health.heartbeat_path(tmp_path, "graph")
    ok, why = health.check(path, max_age_s=60, now=1_000_000.0)
    assert not ok and "no heartbeat" in why
    health.touch(path, now=1_000_000.0 - 5)
    assert health.check(path, max_age_s=60, now=1_000_000.0)[0]
    health.touch(path, now=1_000_000.0 - 61)
    ok, why = health.check(path, max_age_s=60, now=1_000_000.0)
    assert not ok and "stalled" in why


def test_probe_command_exit_codes(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "topologies.health", "fanout", "--state-dir", str(tmp_path)]
    assert subprocess.run(cmd, cwd=REPO, capture_output=True, timeout=30).returncode == 1
    health.touch(health.heartbeat_path(tmp_path, "fanout"))
    assert subprocess.run(cmd, cwd=REPO, capture_output=True, timeout=30).returncode == 0
    stale = [*cmd, "--max-age", "0"]
    health.touch(health.heartbeat_path(tmp_path, "fanout"), now=1.0)
    assert subprocess.run(stale, cwd=REPO, capture_output=True, timeout=30).returncode == 1


def test_idle_worker_stays_healthy_without_traffic() -> None:
    mon = health.ProgressMonitor(stall_s=120)
    for t in range(0, 3600, 5):  # an hour caught up, nothing new: no traffic is not a hang
        assert mon.observe({"p0": 10, "p1": None}, {"p0": 10, "p1": None}, float(t))
    assert mon.observe({}, {}, 4000.0)  # no partition assigned (more replicas than partitions)


def test_records_waiting_without_a_commit_stall_after_the_bound() -> None:
    mon = health.ProgressMonitor(stall_s=120)
    assert mon.observe({"p0": 10}, {"p0": 10}, 0.0)
    assert mon.observe({"p0": 10}, {"p0": 50}, 5.0)  # records arrive: waiting from now
    assert mon.observe({"p0": 10}, {"p0": 60}, 100.0)
    assert not mon.observe({"p0": 10}, {"p0": 60}, 130.0)  # a hung handler: no commit in 125 s
    assert mon.observe({"p0": 11}, {"p0": 60}, 135.0)  # a commit is progress again
    assert mon.observe({"p0": 11}, {"p0": 60}, 250.0)
    assert not mon.observe({"p0": 11}, {"p0": 60}, 260.0)


def test_a_group_started_at_latest_is_not_waiting_on_records_from_before_it_joined() -> None:
    """The browser e2e's moderation worker (#22): engagements.v1[2] held likes from before the group
    joined at ``latest`` and got none after, so it looked like 'records waiting' with no commit and
    the heartbeat was withheld 120 s after the worker's last commit, while the worker was idle."""
    mon = health.ProgressMonitor(stall_s=120, from_latest=True)
    for t in range(0, 400, 5):
        assert mon.observe({"p0": 12, "p2": None}, {"p0": 12, "p2": 7}, float(t)), t
    assert mon.waiting == []
    assert mon.observe({"p0": 12, "p2": None}, {"p0": 12, "p2": 8}, 400.0)  # a record past the start
    assert mon.waiting == [("p2", None, 8)]
    assert not mon.observe({"p0": 12, "p2": None}, {"p0": 12, "p2": 8}, 525.0)  # ... never committed
    assert mon.observe({"p0": 12, "p2": 8}, {"p0": 12, "p2": 8}, 530.0)
    # a group that starts at the earliest offset has all of them to read
    mon = health.ProgressMonitor(stall_s=120)
    assert mon.observe({"p2": None}, {"p2": 7}, 0.0)
    assert not mon.observe({"p2": None}, {"p2": 7}, 125.0)


def test_busy_worker_that_commits_is_healthy() -> None:
    mon = health.ProgressMonitor(stall_s=120)
    for t in range(0, 1000, 5):
        assert mon.observe({"p0": t}, {"p0": t + 500}, float(t))


class _Consumer:
    def __init__(self) -> None:
        self.committed: dict[str, int | None] = {"p0": 3}
        self.hw: dict[str, int] = {"p0": 3}
        self._committed_offset = self.committed
        self._thread = SimpleNamespace(crashed=False, should_stop=False)

    def assignment(self) -> set[str]:
        return set(self.hw)

    def highwater(self, tp: str) -> int:
        return self.hw[tp]


def test_worker_heartbeat_timer_touches_only_while_alive_and_progressing(tmp_path: Path,
                                                                          monkeypatch) -> None:
    settings = Settings(state_dir=tmp_path, kafka_bootstrap="127.0.0.1:1")
    app = rt.create_faust_app(settings, "graph", app_id="health-test")
    path = health.heartbeat_path(tmp_path, "graph")
    assert app.heartbeat_path == path

    # take the coroutine the timer runs from a fresh install, with a tiny stall bound
    ticks: list = []
    monkeypatch.setattr(app, "timer", lambda *a, **k: (lambda fn: ticks.append(fn) or fn))
    rt.install_heartbeat(app, path, stall_s=10)
    tick = ticks[-1]
    consumer = _Consumer()
    monkeypatch.setattr(type(app), "consumer", property(lambda self: consumer))
    clock = [1000.0]
    monkeypatch.setattr(rt.time, "monotonic", lambda: clock[0])

    asyncio.run(tick())  # caught up: fresh
    assert path.exists()
    path.unlink()
    consumer.hw["p0"] = 9  # records waiting, the handler hangs
    asyncio.run(tick())
    assert path.exists()  # waiting only just started
    path.unlink()
    clock[0] += 11
    asyncio.run(tick())
    assert not path.exists(), "a stalled consumer must not keep its heartbeat fresh"
    consumer.committed["p0"] = 9
    asyncio.run(tick())
    assert path.exists()
    path.unlink()
    consumer._thread.crashed = True  # consumer thread died
    asyncio.run(tick())
    assert not path.exists()
    consumer._thread.crashed = False
    rt.guard_of(app).trip(RuntimeError("boom"))
    asyncio.run(tick())
    assert not path.exists(), "a crashed worker has no heartbeat"

