"""The short chaos subset of ``make test`` (issue #13): kill -9 of the fan-out and engagement workers and a
Redis loss, each under a mixed write load through the HTTP API with a good client, each verified in full
from the topics read from offset 0 (see :mod:`bench.chaos`).

Every run is strict, the Redis loss too: the Idempotency-Key claims are also kept in Cassandra (a
pending one before its event is produced), so a retry that crosses the loss finds the first attempt
instead of producing its event a second time (docs/reliability.md).

Runs on the session stack: the workers and the API are started as ``feedstream up --no-seed`` starts
them (Redis is restarted the same way after its kill) and stopped at the end. About 3-4 minutes.
"""

from __future__ import annotations

import pytest

from bench.chaos.run import suite
from core.settings import Settings

pytestmark = pytest.mark.timeout(1500)  # the session stack may start inside this test
FAULTS = ["kill-fanout", "kill-engagement", "kill-redis"]


def test_no_acknowledged_write_is_lost_or_doubled_and_every_view_matches_the_log(stack: Settings,
                                                                                  tmp_path) -> None:
    # no fault here touches the trending job (which the checks do not read): no wait for it to checkpoint
    results = suite(FAULTS, duration_s=18, rate=8, users=10, out=tmp_path, own=False, echo=print,
                    wait_trending=False)
    assert [r.fault for r in results] == FAULTS
    for r in results:
        v = r.verdict
        assert r.acked > 50 and v["counters_checked"] > 5 and v["feeds_checked"] >= 10, (r.fault, r.acked, v)
        assert r.inject_at is not None and r.heal_at is not None, r.fault
        assert (v["missing_from_log"], v["duplicates"], v["unacked_in_log"]) == (0, 0, 0), (r.fault, v["examples"])
        assert v["view_mismatches"] == 0, (r.fault, v["examples"])
        assert r.drain_s is not None, f"{r.fault}: consumer lag never reached 0"
