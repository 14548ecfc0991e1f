"""The batched moderation worker gives the verdicts of scoring one record at a time (issue 17's worker cost).

A real moderation worker reads one batch from posts.v1 (its group committed at the topic's end, then
the batch produced on one partition): five near-identical campaign posts by two accounts (four by
one), a legitimate post, a redelivery of the first post, a Liked that does not belong on the topic and bytes
that do not decode. The model parts in Redis and Cassandra and the hidden set equal those of
``score_items`` called one record at a time in order on a second keyspace and Redis database (the
behaviour facts, posting rate and near-duplicate authors, are the ones the earlier records of the
batch leave), and the two poison records are dead-lettered with their source offsets.
"""

from __future__ import annotations

import random
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from support.wait import wait_until

from bench.fanout_drain import end_offsets
from core.events import new_event
from core.ids import new_id
from core.settings import Settings, isolated
from core.workload import WorkloadConfig, spam_campaign, spam_post_body
from models.moderation.features import Behaviour, content
from ops.workers import start_worker, stop_workers
from stores import cassandra, progress
from stores import moderation as mod
from stores import redis as redis_store
from streams.admin import apply_all
from streams.catalog import ENGAGEMENTS, MODERATION, POSTS
from streams.producer import event_type_headers, producer_config
from streams.serde import Serde
from topologies.faust_runtime import group_id
from topologies.moderation.app import Engines, score_items
from topologies.moderation.logic import item_of

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


def post(author: str, body: dict[str, Any], at: int) -> dict[str, Any]:
    ev = new_event(author, post_id=new_id(), author_id=author, text=body["text"], media=[],
                   links=list(body.get("links") or []), hashtags=[], mentions=[], visibility="PUBLIC")
    ev["occurred_at"] = at
    return ev


def stored(s: Settings, keys: list[str]) -> dict[str, Any]:
    """Per content key: the model part in Redis, in Cassandra, and whether it is hidden."""
    r, sess = redis_store.client(s), cassandra.session(s)
    durable = mod.decisions_durable(sess, [int(k.split(":")[1]) for k in keys])
    out = {}
    for k in keys:
        cid = int(k.split(":")[1])
        m = mod.state(r, k).get("m") or {}
        cas = (durable.get(cid) or (None, None))[0] or {}
        pick = ("decision", "scores", "reasons", "needs_review", "content_version", "event_id")
        out[k] = ({f: m.get(f) for f in pick}, {f: cas.get(f) for f in pick}, bool(r.sismember(mod.HIDDEN, str(cid))))
    return out


def test_a_batch_with_a_redelivery_and_poison_gives_the_one_by_one_verdicts(stack: Settings) -> None:
    apply_all(stack, echo=lambda *_: None)
    s, ref = isolated(stack, "fs_itest_modbatch", 11), isolated(stack, "fs_itest_modref", 12)
    for x in (s, ref):
        redis_store.client(x).flushdb()
        mod.mark_loaded(redis_store.client(x))  # an empty state, not a lost one: no rebuild from the log
    rng, tag = random.Random(5), uuid.uuid4().hex[:6]
    campaign = spam_campaign(WorkloadConfig(seed=5), 3)
    at = int(time.time() * 1000) - 60_000
    a, a2, b, a3, c = (post(f"s{tag}{i % 2}", spam_post_body(rng, campaign), at + i) for i in (0, 2, 1, 4, 6))
    legit = post(f"l{tag}", {"text": "coffee with the team before the match #weekend"}, at + 7)
    serde = Serde(stack.registry_url)
    liked = new_event("x", post_id=1, post_author_id="y", user_id="x")  # does not belong on posts.v1
    records: list[tuple[str | None, Any]] = [("PostCreated", a), ("PostCreated", b), ("Liked", liked), ("PostCreated", a),
                                             (None, b"\x00not avro"), ("PostCreated", a2), ("PostCreated", a3),
                                             ("PostCreated", c), ("PostCreated", legit)]
    suffix = f"-itest-{tag}"
    group = group_id(s.model_copy(update={"topology_group_suffix": suffix}), "moderation")
    for topic in (POSTS.name, ENGAGEMENTS.name, MODERATION.name):
        start = end_offsets(s, topic)
        c_ = Consumer({"bootstrap.servers": s.kafka_bootstrap, "group.id": group, "enable.auto.commit": False})
        c_.commit(offsets=[TopicPartition(topic, p, o) for p, o in start.items()], asynchronous=False)
        c_.close()
    dl_start = end_offsets(s, "dead-letters.v1")
    first = end_offsets(s, POSTS.name)[0]
    prod = Producer(producer_config(stack))
    for name, value in records:
        data = value if name is None else serde.encode(name, value, POSTS.name)
        prod.produce(POSTS.name, data, b"k", partition=0,
                     headers=event_type_headers(f"io.feedstream.events.{name or 'PostCreated'}"))
    assert prod.flush(30) == 0
    last = first + len(records) - 1

    logs = Path(tempfile.mkdtemp(prefix="itest-modbatch-"))
    procs = [start_worker(s, "moderation", logs / "moderation.log", topology_group_suffix=suffix,
                          log_batches=True)]
    try:
        r = redis_store.client(s)
        wait_until(lambda: progress.marks_of(r, "moderation").get((POSTS.name, 0), -1) >= last
                   or procs[0].poll() is not None, timeout_s=240)
        assert procs[0].poll() is None, (logs / "moderation.log").read_text()[-3000:]
    finally:
        stop_workers(procs)
    sizes = [ln.split("n=")[1].split()[0] for ln in (logs / "moderation.log").read_text().splitlines()
             if "moderation batch" in ln]

    eng = Engines(ref)
    items = [item_of(n, v) for n, v in records if n == "PostCreated"]
    for it in items:  # one record at a time, in order: the semantics before batching
        score_items(eng, [it])
    keys = list(dict.fromkeys(it.key for it in items if it is not None))
    got, want = stored(s, keys), stored(ref, keys)
    assert got == want, sizes
    assert "7" in sizes, sizes  # one batch (the whole backlog was in the log before the worker started)
    assert all(m["decision"] and m == cas for m, cas, _ in got.values())
    # the test discriminates: the author's fourth post scores on the posting rate the earlier ones left
    alone = eng.clf.classify([(content(c["text"], c["links"]), Behaviour(None, 0, 0, 1, 0))])[0]
    assert want[f"post:{c['post_id']}"][0]["scores"] != alone.scores

    dl = Consumer({"bootstrap.servers": s.kafka_bootstrap, "group.id": f"dl-{tag}", "enable.auto.commit": False})
    dl.assign([TopicPartition("dead-letters.v1", p, o) for p, o in dl_start.items()])
    letters: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len([x for x in letters if x["consumer_group"] == group]) < 2:
        letters += [serde.decode(m.value()).value for m in dl.consume(100, 0.5) if m.error() is None]
    dl.close()
    mine = sorted((x["source_topic"], x["source_partition"], x["source_offset"]) for x in letters if x["consumer_group"] == group)
    assert mine == [(POSTS.name, 0, first + 2), (POSTS.name, 0, first + 4)]
