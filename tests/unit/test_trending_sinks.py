"""Trending output records and job config, without a broker."""

from __future__ import annotations

from typing import ClassVar

from support.serde import mock_serde

from topologies.trending.app import job_config, latest_checkpoint
from topologies.trending.logic import HASHTAGS, Contribution, Window, WindowSpec, score, top_k
from topologies.trending.sinks import late_record, trending_records

SPEC = WindowSpec(60_000, 10_000)


def _topk():
    w = Window(0, 60_000)
    items = [score(HASHTAGS, t, w, (n, float(n)), {}, SPEC) for t, n in (("a", 2), ("b", 7))]
    return top_k(HASHTAGS, w, items, SPEC, 10)[0]


def test_trending_records_encode_and_have_replay_stable_ids() -> None:
    serde = mock_serde()
    first, again = trending_records(_topk(), 1), trending_records(_topk(), 2)
    assert [r["event_id"] for r in first] == [r["event_id"] for r in again]
    assert len({r["event_id"] for r in first}) == 2
    assert [(r["rank"], r["item"], r["count"]) for r in first] == [(1, "b", 7), (2, "a", 2)]
    decoded = serde.decode(serde.encode("TrendingEntry", first[0], "trending.v1"))
    assert decoded.name == "TrendingEntry" and decoded.value["scope"] == "hashtags:1m"


def test_late_record_is_a_valid_dead_letter() -> None:
    serde = mock_serde()
    value = late_record(Contribution(HASHTAGS, "a", 5, 1.0, 1), "posts.v1", 2, 41, "1m", 99, 123)
    decoded = serde.decode(serde.encode("DeadLetter", value, "dead-letters.v1")).value
    assert (decoded["source_topic"], decoded["source_partition"], decoded["source_offset"]) == ("posts.v1", 2, 41)
    assert decoded["error_type"] == "LateEvent"


def test_job_config_from_settings_and_latest_checkpoint(tmp_path, monkeypatch) -> None:
    from core.settings import Settings

    monkeypatch.setenv("FEEDSTREAM_TRENDING_WINDOWS", "1h/1m,60s/10s/30s")
    monkeypatch.setenv("FEEDSTREAM_TRENDING_K", "5")
    cfg = job_config(Settings())
    assert [w.label for w in cfg.windows] == ["1h", "1m"] and cfg.k == 5
    assert cfg.windows[1].lateness_ms == 30_000
    assert (cfg.group_id, cfg.offset_reset) == ("trending", "earliest")
    monkeypatch.setenv("FEEDSTREAM_TOPOLOGY_GROUP_SUFFIX", "-e2e")
    monkeypatch.setenv("FEEDSTREAM_TOPOLOGY_OFFSET_RESET", "latest")
    cfg = job_config(Settings())
    assert (cfg.group_id, cfg.offset_reset) == ("trending-e2e", "latest")
    assert latest_checkpoint(tmp_path) is None
    for n in (3, 4):
        (tmp_path / "job" / f"chk-{n}").mkdir(parents=True)
        (tmp_path / "job" / f"chk-{n}" / "_metadata").write_bytes(b"x")
    (tmp_path / "job" / "chk-5").mkdir()  # in progress: no _metadata yet
    assert latest_checkpoint(tmp_path).endswith("chk-4")


def test_run_options_local_vs_cluster(tmp_path) -> None:
    from core.settings import Settings
    from topologies.trending.app import run_options

    s = Settings(state_dir=tmp_path)
    local = run_options(s, cluster=False)
    assert local["parallelism"] == 1 and local["checkpoint_dir"] == tmp_path / "flink" / "trending"
    assert local["restore"] and local["local"]
    # #13: a checkpoint stuck while Kafka is out fails within a minute (Flink's default is 10 min)
    assert local["extra"] == {"execution.checkpointing.timeout": "60s",
                              "execution.checkpointing.tolerable-failed-checkpoints": "5"}
    tight = run_options(Settings(state_dir=tmp_path, trending_checkpoint_timeout_s=20,
                                 trending_tolerable_failed_checkpoints=2), cluster=False)
    assert tight["extra"]["execution.checkpointing.timeout"] == "20s"
    assert tight["extra"]["execution.checkpointing.tolerable-failed-checkpoints"] == "2"
    cluster = run_options(s, cluster=True)  # the cluster's parallelism and checkpoint settings apply
    assert (cluster["parallelism"], cluster["checkpoint_dir"], cluster["checkpoint_interval_ms"]) == (None, None, None)
    assert not cluster["restore"] and not cluster["local"] and cluster["extra"] == {}
    over = run_options(Settings(state_dir=tmp_path, trending_parallelism=4,
                                trending_checkpoint_dir="s3://b/trending"), cluster=True)
    assert (over["parallelism"], over["checkpoint_dir"]) == (4, "s3://b/trending")


class _Producer:
    """A librdkafka stand-in: ``confirms`` says whether flush delivers what was produced."""

    made: ClassVar[list[_Producer]] = []

    def __init__(self, conf: dict, *, confirms: bool = True, error: str | None = None) -> None:
        self.conf, self.confirms, self.error = conf, confirms, error
        self.queued: list[tuple] = []
        self.delivered: list[bytes] = []
        self.purged = False
        _Producer.made.append(self)

    def produce(self, topic, payload, key, headers=None, on_delivery=None) -> None:
        self.queued.append((payload, on_delivery))

    def flush(self, timeout: float) -> int:
        if not self.confirms:
            return len(self.queued)
        for payload, cb in self.queued:
            cb(self.error, None)
            if self.error is None:
                self.delivered.append(payload)
        self.queued = []
        return 0

    def purge(self, *args, **kwargs) -> None:
        self.purged = True  # even a non-blocking purge hung on the wedged producer's threads


def _publisher(factory):
    from core.settings import Settings
    from topologies.trending.sinks import Publisher

    return Publisher(Settings(), cassandra=False, producer_factory=factory)


def test_a_producer_that_stops_confirming_is_replaced_and_the_records_sent_again() -> None:
    """After a Kafka kill the job's idempotent producer never reconnected: each publish waited out
    its flush and the entries were silently dropped (no delivery report was read)."""
    _Producer.made = []
    states = iter([False, True])  # the first producer never confirms, its replacement does
    pub = _publisher(lambda conf: _Producer(conf, confirms=next(states)))
    records = [("trending.v1", b"e1", b"k", []), ("trending.v1", b"e2", b"k", [])]
    pub._send(records)
    first, second = _Producer.made
    assert not first.purged and not first.delivered
    assert second.delivered == [b"e1", b"e2"]
    assert pub.producer is second
    # the wedged producer is kept, not destroyed: its rd_kafka_destroy blocked the task's close
    from topologies.trending.sinks import ABANDONED
    assert ABANDONED[-1] is first


def test_failed_delivery_reports_are_not_success_and_give_up_after_the_attempts() -> None:
    import pytest

    from topologies.trending.sinks import SEND_ATTEMPTS

    _Producer.made = []
    pub = _publisher(lambda conf: _Producer(conf, error="Local: Message timed out"))
    with pytest.raises(RuntimeError, match="did not confirm delivery"):
        pub._send([("trending.v1", b"e1", b"k", [])])
    assert len(_Producer.made) == SEND_ATTEMPTS + 1  # the first, then a new one after each failure
    assert not any(p.purged for p in _Producer.made)
