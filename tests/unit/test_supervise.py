"""Local supervision of platform processes: restart with backoff, restarts in status (#13 defect 6)."""

from __future__ import annotations

import sys
from dataclasses import replace

from core.settings import Settings
from ops import platform
from ops.local import supervise as sv


class Child:
    def __init__(self, pid: int, code: int) -> None:
        self.pid, self.code = pid, code


def test_backoff_doubles_up_to_a_cap() -> None:
    assert [sv.backoff_s(n) for n in (1, 2, 3, 4, 7, 8, 20)] == [1, 2, 4, 8, 60, 60, 60]


def test_a_process_that_keeps_exiting_is_restarted_with_backoff_and_counted() -> None:
    codes = iter([70, 70, 1, 0])  # crashed, crashed, gave up (PyFlink), then stopped on request
    now = [0.0]
    slept: list[float] = []
    states: list[sv.State] = []
    stop = {"asked": False}

    def start() -> Child:
        return Child(100 + len(slept), 0)

    def wait(child: Child) -> int:
        now[0] += 5  # each run lasts 5 s: not stable, so the backoff grows
        code = next(codes)
        stop["asked"] = code == 0
        return code

    final = sv.supervise(start, wait, stopping=lambda: stop["asked"], sleep=slept.append,
                         record=lambda st: states.append(replace(st)), clock=lambda: now[0])
    assert slept == [1, 2, 4]
    assert final.restarts == 3 and final.last_exit == 0 and not final.running
    assert [s.running for s in states][:2] == [True, False] and states[0].child_pid == 100
    assert [s.last_exit for s in states if not s.running] == [70, 70, 1, 0]


def test_backoff_resets_after_a_stable_run() -> None:
    runs = iter([5.0, 5.0, 120.0, 5.0])
    now = [0.0]
    slept: list[float] = []

    def wait(child: Child) -> int:
        now[0] += next(runs)
        return 70

    sv.supervise(lambda: Child(1, 0), wait, stopping=lambda: len(slept) >= 4, sleep=slept.append,
                 record=lambda st: None, clock=lambda: now[0])
    assert slept == [1, 2, 1, 2]


def test_state_file_round_trip_and_unreadable_is_none(tmp_path) -> None:
    path = tmp_path / "w.supervise.json"
    assert sv.read_state(path) is None
    path.write_text('{"restarts": 3, "last_exit": 70, "running": true, "child_pid": 9, '
                    '"next_start_at": null}')
    assert sv.read_state(path) == sv.State(3, 70, True, 9, None)
    path.write_text("{")
    assert sv.read_state(path) is None


def test_topology_workers_run_under_the_supervisor_and_the_api_does_not(tmp_path) -> None:
    s = Settings(state_dir=tmp_path)
    by_name = {svc.name: svc for svc in platform.SERVICES}
    cmd = platform._command(s, by_name["topology-trending"])
    state = str(platform.supervisor_state_path(s, "topology-trending"))
    assert cmd[:5] == [sys.executable, "-m", "ops.local.supervise", state, "--"]
    assert cmd[5:] == [sys.executable, "-m", "feedstream.cli", "topology", "run", "trending"]
    assert all(by_name[f"topology-{n}"].supervised
               for n in ("graph", "fanout", "engagement", "trending", "users"))
    assert platform._command(s, by_name["api"])[:3] == [sys.executable, "-m", "serving.main"]
