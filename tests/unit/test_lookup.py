"""streams.lookup.find_event: a partition the broker could not answer for is "unknown", not "absent"."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from streams import lookup
from streams.errors import DeliveryInDoubt


class _Consumer:
    """A consumer whose offsets_for_times answers per partition (an error, or an offset) and whose
    log holds nothing: only the pure logic of find_event runs."""

    def __init__(self, answers: dict[int, tuple[int, object]]) -> None:
        self.answers = answers

    def offsets_for_times(self, tps, timeout):
        return [SimpleNamespace(topic=tp.topic, partition=tp.partition, offset=self.answers[tp.partition][0],
                                error=self.answers[tp.partition][1]) for tp in tps]

    def get_watermark_offsets(self, tp, timeout):
        return 0, 10

    def assign(self, tps):
        assert not tps, "nothing to read in these cases"

    def close(self):
        pass


def _find(monkeypatch, answers, partition=2):
    monkeypatch.setattr(lookup, "Consumer", lambda conf: _Consumer(answers))
    return lookup.find_event("127.0.0.1:1", None, "posts.v1", partition, b"k", "e1", 0, 1.0)


def test_a_partition_without_an_answer_keeps_the_outcome_in_doubt(monkeypatch) -> None:
    # #13 kill-kafka: right after the broker restarts, offsets_for_times answers -1 with an error
    # (no leader yet); read as "nothing since", the retry produced the event a second time
    with pytest.raises(DeliveryInDoubt, match="LEADER_NOT_AVAILABLE"):
        _find(monkeypatch, {2: (-1, "KafkaError{code=LEADER_NOT_AVAILABLE}")})


def test_nothing_written_since_is_absent(monkeypatch) -> None:
    assert _find(monkeypatch, {2: (-1, None)}) is None
    assert _find(monkeypatch, {2: (10, None)}) is None  # the first record since is past the end
