"""``python -m bench.moderation`` runs end to end on a small world and its figures are consistent.

Figures are not asserted against the goals here (a loaded test machine; see docs/moderation.md):
this checks the command works and that what it reports adds up.
"""

from __future__ import annotations

import json

import pytest

from bench import moderation
from core.settings import Settings

pytestmark = pytest.mark.timeout(900)


def test_the_moderation_bench_runs_on_a_small_world(stack: Settings, tmp_path) -> None:
    out = moderation.main(["--users", "40", "--posts-per-user", "1.5", "--spam-share", "0.2",
                           "--timeout-s", "180", "--out", str(tmp_path / "moderation.json")])
    assert json.loads((tmp_path / "moderation.json").read_text()) == out
    assert out["posts"]["spam"] >= 10 and out["verdicts_seen"] == out["posts"]["spam"] + out["posts"]["legit"]
    assert out["impressions"] > 0 and 0 <= out["spam_impression_share"] <= 1
    assert out["verdict_latency_ms"]["n"] == out["verdicts_seen"] and out["verdict_latency_ms"]["p50"] > 0
    assert out["events_per_worker_cpu_s"] > 0 and out["classifier_ceiling_per_cpu_s"] > 0
