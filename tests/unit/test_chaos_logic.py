"""The chaos suite's pure parts: the log check, the oracle's notifications and follows, recovery, the table."""

from __future__ import annotations

from pathlib import Path

from bench.chaos.faults import PROXIED, TOXICS, WORKERS, catalog
from bench.chaos.load import Ack
from bench.chaos.report import table
from bench.chaos.run import RunResult, recovery
from bench.chaos.verify import Rec, Verdict, build_oracle, check_log, counts_of
from core.rows import Counts


def ev(eid: str, actor: str, **fields) -> dict:
    return {"event_id": eid, "actor_id": actor, "occurred_at": fields.pop("at", 1000), **fields}


def test_check_log_counts_missing_duplicate_and_unacked_events() -> None:
    acks = [Ack("like", "a", e, 0.0, 0.1, 1) for e in ("e1", "e2", "e3")]
    log = [Rec("engagements.v1", 0, 0, "Liked", ev("e1", "a")), Rec("engagements.v1", 0, 1, "Liked", ev("e2", "a")),
           Rec("engagements.v1", 0, 2, "Liked", ev("e2", "a")), Rec("engagements.v1", 1, 0, "Liked", ev("e9", "a"))]
    v = Verdict()
    check_log(acks, log, v)
    assert (v.acked, v.missing_from_log, v.duplicates, v.unacked_in_log) == (3, 1, 1, 1)
    assert not v.ok


def test_oracle_follow_history_and_notifications_replay() -> None:
    log = [
        Rec("graph.v1", 0, 0, "Followed", ev("f1", "b", at=100, follower_id="b", followee_id="a")),
        Rec("graph.v1", 0, 1, "Followed", ev("f2", "c", at=100, follower_id="c", followee_id="a")),
        Rec("graph.v1", 0, 2, "Unfollowed", ev("f3", "c", at=300, follower_id="c", followee_id="a")),
        Rec("posts.v1", 0, 0, "PostCreated", ev("p1", "a", at=200, post_id=7, author_id="a", visibility="PUBLIC")),
        Rec("engagements.v1", 0, 0, "Liked", ev("l1", "b", at=250, post_id=7, user_id="b", post_author_id="a")),
        Rec("engagements.v1", 0, 1, "Liked", ev("l2", "a", at=260, post_id=7, user_id="a", post_author_id="a")),
    ]
    o = build_oracle(log, {"a", "b", "c"})
    assert o.followed_since("b", "a", 200) and o.following_now("b", "a")
    assert not o.following_now("c", "a") and not o.followed_since("c", "a", 200)
    assert not o.followed_since("b", "a", 50)  # followed after the post: not required in the feed
    # two follows and b's like notify a; a's own like does not
    assert len(o.notifications["a"]) == 3 and not o.notifications.get("b") and not o.undecided


def test_notifications_of_engagements_on_deleted_posts_are_not_required() -> None:
    log = [Rec("posts.v1", 0, 0, "PostCreated", ev("p1", "a", at=200, post_id=7, author_id="a", visibility="PUBLIC")),
           Rec("posts.v1", 0, 1, "PostDeleted", ev("p2", "a", at=300, post_id=7, author_id="a")),
           Rec("engagements.v1", 0, 0, "Liked", ev("l1", "b", at=250, post_id=7, user_id="b", post_author_id="a"))]
    o = build_oracle(log, {"a", "b"})
    assert not o.notifications.get("a") and len(o.undecided) == 1


def test_counts_of_reads_api_and_plain_shapes() -> None:
    assert counts_of({"counts": {"likes": 2, "comments": 1, "shares": 0, "reactions": {"WOW": 1, "SAD": 0}}}) == \
        Counts(2, 1, 0, {"WOW": 1})
    assert counts_of({"likes": 0}) == Counts()


def test_recovery_is_injection_to_pre_fault_lag_after_the_heal() -> None:
    lag = [(1.0, 3), (2.0, 5), (3.0, None), (4.0, 40), (6.0, 9), (7.0, 4), (8.0, 0)]
    assert recovery(lag, inject_at=2.5, heal_at=5.0) == 4.5
    assert recovery(lag, inject_at=None, heal_at=None) is None
    assert recovery([(1.0, 0), (3.0, 50)], inject_at=2.0, heal_at=2.5) is None  # never recovered
    # healed (worker restarted) before the lag rose: recovery waits for the peak to drain
    assert recovery([(1.0, 5), (3.0, 4), (5.0, 30), (7.0, 12), (9.0, 3)], inject_at=2.0, heal_at=2.5) == 7.0


def test_catalog_has_every_fault_of_the_issue() -> None:
    names = set(catalog())
    assert {f"kill-{w}" for w in WORKERS} <= names
    assert {"kill-api", "kill-kafka", "kill-redis", "kill-cassandra", "stop-fanout", "none"} <= names
    assert {f"net-{e}-{t}" for e in PROXIED for t in TOXICS} <= names
    assert {k for k, *_ in TOXICS.values()} == {"latency", "bandwidth", "reset_peer", "timeout"}


def test_table_has_a_row_per_fault_and_zeroes_for_a_clean_run() -> None:
    v = {**Verdict(counters_checked=5).__dict__, "view_mismatches": 0}
    r = RunResult("kill-fanout", "x", 100, {}, 0, 3, {}, v, True, 10.0, 11.0, 30.0, 6.5, 2.0)
    out = table([r])
    assert out.splitlines()[2] == "| kill-fanout | 100 | 0 | 0 | 0 | 0 | 0/10 | 0 | 6.5 | 2 |"


def test_saved_results_load_back_and_render_again(tmp_path) -> None:
    from bench.chaos.report import load, save

    v = {**Verdict(counters_checked=2).__dict__, "view_mismatches": 0}
    runs = [RunResult("kill-redis", "x", 10, {}, 0, 1, {}, v, True, 5.0, 9.0, 20.0, 9.0, 3.0,
                      [(0.0, 0), (6.0, 40), (14.0, 0)], [(1.0, 0.5), (7.0, None)])]
    paths = save(runs, tmp_path, "python -m feedstream.cli chaos --faults kill-redis")
    command, again = load(paths["json"])
    assert command.endswith("kill-redis") and again[0].fault == "kill-redis" and again[0].recovery_s == 9.0
    assert paths["png"].stat().st_size > 1000 and "| kill-redis | 10 |" in paths["md"].read_text()


def test_kafka_behind_the_proxy_gets_a_listener_that_advertises_the_proxy() -> None:
    from core.settings import Settings
    from ops.local.configs import kafka_properties

    plain = kafka_properties(Settings(kafka_port=19092, kafka_controller_port=19093), Path("/tmp/k"))
    assert "advertised.listeners=PLAINTEXT://127.0.0.1:19092\n" in plain and "PROXIED" not in plain
    proxied = kafka_properties(Settings(kafka_port=19092, kafka_controller_port=19093, kafka_proxy_port=19094,
                                        kafka_proxy_advertised="127.0.0.1:19095"), Path("/tmp/k"))
    props = dict(line.split("=", 1) for line in proxied.splitlines() if "=" in line)
    assert props["listeners"].split(",") == ["PLAINTEXT://127.0.0.1:19092", "CONTROLLER://127.0.0.1:19093",
                                             "PROXIED://127.0.0.1:19094"]
    assert props["advertised.listeners"].split(",") == ["PLAINTEXT://127.0.0.1:19092", "PROXIED://127.0.0.1:19095"]
    assert "PROXIED:PLAINTEXT" in props["listener.security.protocol.map"].split(",")
    assert props["inter.broker.listener.name"] == "PLAINTEXT"
    assert {"net-kafka-latency", "net-kafka-bandwidth", "net-kafka-reset", "net-kafka-timeout"} <= set(catalog())
