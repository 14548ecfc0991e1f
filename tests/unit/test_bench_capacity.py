"""bench.capacity: /proc CPU parsing, the saturation stop rule, the scale model and the templates."""

from __future__ import annotations

import os
import random

import pytest

from bench import capacity as cap


def test_proc_cpu_seconds_counts_fields_after_the_command_name() -> None:
    # a command name with spaces and a ")" must not shift the fields; utime=250, stime=50 ticks
    stat = "4242 (uvicorn (w) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 5 0"
    assert cap.proc_cpu_seconds(stat, 100) == pytest.approx(3.0)


def test_api_cpu_seconds_of_this_process_grows_with_work() -> None:
    before = cap.api_cpu_seconds(os.getpid())
    sum(i * i for i in range(3_000_000))
    assert cap.api_cpu_seconds(os.getpid()) > before


def test_api_cpu_seconds_counts_a_worker_child() -> None:
    """granian serves in a child of the pid the bench started: its CPU must be counted."""
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        assert child.pid in cap.descendants(os.getpid())
        child.communicate(b"", timeout=60)  # stdin closed: the child ends
    finally:
        child.kill()
    assert child.pid not in cap.descendants(os.getpid())


def _step(c: int, rate: float, err: float = 0.0) -> cap.Step:
    return cap.Step(c, rate, 0.001, {"error_rate": err})


def test_saturate_stops_when_a_level_gains_less_than_the_threshold() -> None:
    rates = {1: 100.0, 2: 190.0, 4: 300.0, 8: 310.0, 16: 400.0}
    seen: list[int] = []

    def measure(c: int) -> cap.Step:
        seen.append(c)
        return _step(c, rates[c])

    steps = cap.saturate(measure, [1, 2, 4, 8, 16], gain=0.05)
    assert seen == [1, 2, 4, 8]  # 310 < 300 * 1.05: stop before 16
    assert cap.best_step(steps).connections == 8


def test_saturate_stops_on_errors_and_best_step_prefers_clean_levels() -> None:
    rates = {1: 100.0, 2: 200.0, 4: 900.0}
    steps = cap.saturate(lambda c: _step(c, rates[c], 0.5 if c == 4 else 0.0), [1, 2, 4, 8])
    assert [s.connections for s in steps] == [1, 2, 4]
    assert cap.best_step(steps).connections == 2


def test_scale_model_multiplies_target_rates_by_cpu_per_request() -> None:
    figs = {"feed": {"cpu_ms_per_req": 0.5}, "feed_ranked": {"cpu_ms_per_req": 1.0},
            "post_create": {"cpu_ms_per_req": 1.2}, "like": {"cpu_ms_per_req": 0.8}, "follow": {}}
    sc = cap.scale_model(figs)
    assert sc["api_cores_500k_feed_reads"] == 250.0
    assert sc["api_cores_500k_ranked_reads"] == 500.0
    assert sc["api_cores_50k_writes_worst"] == 60.0


def test_endpoints_cover_every_goal_and_only_post_create_is_unique() -> None:
    readers, authors = ["r1", "r2"], ["a1", "a2"]
    eps = cap.endpoints({"r1": "t1", "r2": "t2"}, readers, authors, [11, 12], {"r1": "c1", "r2": "c2"}, 20,
                        random.Random(1))
    names = {e.name for e in eps}
    assert set(cap.GOALS) | {"noop"} == names
    by = {e.name: e for e in eps}
    assert [e.name for e in eps if e.unique] == ["post_create"]
    assert by["feed_page2"].reqs[0].path == "/v1/users/r1/feed?limit=20&cursor=c1"
    assert all("algorithm=ranked" in r.path for r in by["feed_ranked"].reqs)
    assert by["feed"].reqs[1].headers["Authorization"] == "Bearer t2"
    assert all(r.path.startswith("/v1/posts/1") and r.path.endswith("/like") for r in by["like"].reqs)
