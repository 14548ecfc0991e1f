"""A side effect that fails must never let the offset move (issue #13, defects 2 and 3).

The fan-out worker runs as a real process on the test stack with a ``process`` seam that fails
once, like a Cassandra outage, on a batch holding only post X, after the next posts (same author,
so the same partition, the next offsets) are already in the worker's stream. Before the fix Faust
restarted the agent in the same process and the stream acked the post after X (``take_events``
restores auto-acks when the crashed generator closes; the restarted agent applies and acks the
rest), and Faust's commit bookkeeping (``Consumer._new_offset`` lets one missing offset at the
head through) committed past X: X never got a ``posts`` row. Now the worker must exit non-zero, X's offset must
stay uncommitted, and a restarted worker must apply X.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition
from support.wait import wait_until

from core.events import post_created
from core.ids import new_id
from core.settings import REPO_ROOT, Settings
from ops import workers
from stores import cassandra
from stores import redis as redis_store
from streams.admin import apply_topics
from streams.producer import EventProducer

# The fan-out app (group argv[1]); with argv[3] == "fail" its store step blocks on the batch holding
# post argv[2] until the test says the next posts are sent (plus a second, so the worker has fetched
# them), then raises as a dead Cassandra would.
SCRIPT = (
    "import sys, time, redis\n"
    "from core.settings import get_settings\n"
    "from topologies.fanout.app import create_app, process_posts\n"
    "from topologies.fanout.runtime import Stores\n"
    "from topologies.faust_runtime import run_worker\n"
    "s = get_settings(); r = redis.Redis.from_url(s.redis_url); st = Stores(s)\n"
    "bad, mode = int(sys.argv[2]), sys.argv[3]\n"
    "def process(recs):\n"
    "    if mode == 'fail' and any(x.value['post_id'] == bad for x in recs):\n"
    "        deadline = time.time() + 60\n"
    "        while not r.exists(f'crashtest:{bad}:next') and time.time() < deadline:\n"
    "            time.sleep(0.1)\n"
    "        time.sleep(1)\n"
    "        raise RuntimeError('injected: Cassandra is down')\n"
    "    return process_posts(st, recs)\n"
    "run_worker(create_app(s, app_id=sys.argv[1], process=process), loglevel='info')\n"
)


def start(stack: Settings, app_id: str, bad: int, mode: str, log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-c", SCRIPT, app_id, str(bad), mode], cwd=REPO_ROOT,
                                env=workers.worker_env(stack, topology_offset_reset="latest",
                                                       topology_shutdown_grace_s=10),
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def committed(stack: Settings, group: str, topic: str, partition: int) -> int | None:
    """The group's committed offset of one partition (None when it has none)."""
    c = Consumer({"bootstrap.servers": stack.kafka_bootstrap, "group.id": group,
                  "enable.auto.commit": False})
    try:
        [tp] = c.committed([TopicPartition(topic, partition)], timeout=30)
        return tp.offset if tp.offset >= 0 else None
    finally:
        c.close()


def test_failed_side_effect_exits_nonzero_and_the_restart_applies_the_record(stack: Settings,
                                                                             tmp_path) -> None:
    apply_topics(stack)
    s = cassandra.session(stack)
    r = redis_store.client(stack)

    def stored(pid: int) -> bool:
        return s.execute("SELECT post_id FROM posts WHERE post_id = %s", (pid,)).one() is not None

    author, app_id = f"crash-{new_id()}", f"fanout-crash-{new_id()}"
    bad = post_created(author)
    log = tmp_path / "worker.log"
    first = start(stack, app_id, bad[1]["post_id"], "fail", log)
    try:
        with EventProducer(stack) as producer:
            probes = []

            def joined() -> bool:  # the group starts at "latest": probe until it is assigned
                assert first.poll() is None, f"the worker exited early; see {log}"
                probe = post_created(author)
                probes.append(producer.send(*probe))
                deadline = time.monotonic() + 3
                while time.monotonic() < deadline and not stored(probe[1]["post_id"]):
                    time.sleep(0.1)
                return stored(probe[1]["post_id"])
            wait_until(joined, timeout_s=120)
            tp = (probes[-1].topic, probes[-1].partition)  # the restart must not start at "latest"
            wait_until(lambda: committed(stack, app_id, *tp) is not None, timeout_s=60)
            x = producer.send(*bad)
            time.sleep(0.5)  # X alone in its batch (the agent batches within 5 ms)
            later = [post_created(author) for _ in range(5)]
            reports = [producer.send(*e) for e in later]
            assert [(y.partition, y.offset) for y in reports] == \
                [(x.partition, x.offset + 1 + i) for i in range(len(later))]
            r.set(f"crashtest:{bad[1]['post_id']}:next", 1, ex=600)
        try:
            code = first.wait(120)
        except subprocess.TimeoutExpired:
            code = None
    finally:
        stop(first)
    done = committed(stack, app_id, x.topic, x.partition)
    assert done is not None and done <= x.offset, f"committed {done} past the failed record {x.offset}"
    assert code is not None, f"the worker did not exit within 120 s of a failed side effect; see {log}"
    assert code != 0, f"the worker exited 0 after a failed side effect; see {log}"
    assert not stored(bad[1]["post_id"])

    second = start(stack, app_id, bad[1]["post_id"], "ok", log)
    try:
        wait_until(lambda: all(stored(e[1]["post_id"]) for e in [bad, *later]), timeout_s=120)
        wait_until(lambda: (committed(stack, app_id, x.topic, x.partition) or 0) > reports[-1].offset,
                   timeout_s=60)
        assert second.poll() is None
        os.killpg(second.pid, signal.SIGTERM)  # a clean stop is not taken for a crash
        assert second.wait(60) == 0, f"a SIGTERM stop did not exit 0; see {log}"
    finally:
        stop(second)

