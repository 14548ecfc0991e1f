"""The fan-out walk's rounds (stores.timelines.walk_fanout) hand each reader back at most once.

SSCAN may return a member twice across the calls of one scan (the set rehashed in between), which
the real engine does only under a resize between two rounds; the script's replies are therefore
fed in here by a stand-in for the Redis client (the script itself is covered against the Python
plan on a real Redis in tests/integration/test_fanout_walk.py).
"""

from __future__ import annotations

from typing import Any

from core.feed import ADD, REMOVE, TimelineWrite
from stores import timelines as tls


class Replies:
    """A Redis client stand-in whose walk script answers from ``rounds`` (one list per execute)."""

    def __init__(self, rounds: list[list[Any]]) -> None:
        self.rounds = rounds
        self.cursors: list[str] = []

    def register_script(self, _lua: str) -> Any:
        def call(*, keys: list[str], args: list[Any], client: Any) -> None:
            self.cursors.append(str(args[13]))  # ARGV[14]: the SSCAN cursor of this call
        return call

    def pipeline(self, transaction: bool = False) -> Any:
        return self

    def execute(self) -> list[Any]:
        return self.rounds.pop(0)


def post(op: str = ADD) -> tls.PostFanout:
    return tls.PostFanout(7, "a", op, False, {"ts": 1, "topic": "posts.v1", "partition": 0, "offset": 3})


def test_a_reader_sscan_repeats_across_rounds_is_written_and_evicted_once() -> None:
    rounds = [[[b"17", [b"r1", b"r2", b"r2"], [], [b"old"]]],
              [[b"0", [b"r2", b"r3", b"r1"], [], [b"old", b"r4"]]]]
    fake = Replies(rounds)
    [(writes, inactive)] = tls.walk_fanout(fake, [post()], cap=5, celebrity_threshold=10,  # type: ignore[arg-type]
                                           inactive_cutoff_ms=None)
    assert fake.cursors == ["0", "17"]  # the second round resumed the scan
    assert [w.reader_id for w in writes] == ["a", "r1", "r2", "r3"]  # the author's own write first
    assert all(w.op == ADD and w.post_id == 7 for w in writes)
    assert inactive == ["old", "r4"]


def test_a_delete_removes_each_repeated_follower_once() -> None:
    rounds = [[[b"5", [b"r1", b"r2"], [], []]], [[b"0", [b"r1"], [], []]]]
    [(writes, _)] = tls.walk_fanout(Replies(rounds), [post("DELETE")], cap=5,  # type: ignore[arg-type]
                                    celebrity_threshold=10, inactive_cutoff_ms=None)
    assert writes == [TimelineWrite(r, 7, "a", REMOVE) for r in ("a", "r1", "r2")]


def test_collect_round_keeps_the_first_kind_a_reader_was_seen_with() -> None:
    writes: list[TimelineWrite] = []
    inactive: list[str] = []
    seen = {"a"}
    p = tls.PostFanout(7, "a", "EDIT", True, {})
    tls.collect_round(p, seen, writes, inactive, [b"r1"], [b"r2", b"a"], [])
    tls.collect_round(p, seen, writes, inactive, [b"r2"], [b"r1"], [b"r1"])
    assert writes == [TimelineWrite("r1", 7, "a", "EDIT"), TimelineWrite("r2", 7, "a", REMOVE)]
    assert inactive == []
