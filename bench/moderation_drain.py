"""Moderation drain: one real moderation worker draining a pre-loaded backlog, against same-run ceilings.

``python -m bench.moderation_drain [--events N] [--profile out.svg]`` on the stack in ``FEEDSTREAM_*``
(its own keyspace ``fs_bench_mod`` and Redis db 10, flushed first). The backlog: 75 % posts on
``posts.v1`` (legitimate posts of a :mod:`core.workload` world, ~5 % of them spam campaign posts
from :func:`core.workload.spam_post_body`, 2 % redeliveries) and 25 % comments on
``engagements.v1`` (3 % offensive), each topic's records on one partition with rising timestamps,
so the behaviour features (posting rate, near-duplicate authors) are a function of the log order.
It is produced before the worker starts (the worker's group committed at the topics' ends first)
and the drain is timed from the first applied batch to the end (``progress:moderation`` marks),
with the worker's CPU from ``/proc/<pid>/stat``.

Same-run ceilings: the classifier alone on the same texts and behaviour facts (batches of 500, and
one by one), raw confluent-kafka consume, consume + Avro decode, Faust's no-op per-message cost
(:mod:`bench.faust_consume`) and pipelined Redis. After the drain, every content's model part in
Redis and in Cassandra (and its hidden-set membership) is compared with :func:`reference`: the
:class:`~models.moderation.classify.Classifier` run in-process over the log in order
(``mismatches`` must be 0). Writes ``moderation_drain.json`` to the results directory.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from bench import ceilings
from bench.engagement_drain import consume_decode, faust_consume, redis_hset
from bench.fanout_drain import commit_at, cpu_s, end_offsets, thread_cpu_s
from core.events import new_event
from core.ids import new_id
from core.settings import Settings, get_settings, isolated
from core.workload import OpStream, WorkloadConfig, build_graph, spam_campaign, spam_post_body
from models.moderation.classify import Classifier, ModelVerdict
from models.moderation.features import Behaviour, band_keys, content
from ops.workers import workers
from stores import cassandra, progress
from stores import moderation as mod
from stores import redis as redis_store
from streams.admin import apply_all
from streams.catalog import ENGAGEMENTS, MODERATION, POSTS
from streams.producer import event_type_headers, producer_config
from topologies.faust_runtime import group_id, make_serde

Record = tuple[str, str, dict[str, Any]]  # topic, record name, value
COMMENT_WORDS = ("agreed", "brilliant", "thanks", "lovely", "indeed", "cheers", "fantastic", "yes", "true",
                 "exactly", "nicely", "wonderful", "superb", "bravo", "congrats", "respect")
OFFENSIVE = ("you stupid fucking idiot", "shut up you worthless moron", "what utter bullshit you loser")
HOUR_MS = 3_600_000


def backlog(events: int, seed: int, spam_share: float = 0.05) -> list[Record]:
    """Posts (spam campaigns among them, 2 % redelivered) and comments, timestamps rising in log order."""
    rng = random.Random(seed)
    cfg = WorkloadConfig(users=2000, seed=seed, prefix=f"b{seed % 10_000}")
    ops = OpStream(cfg, build_graph(cfg), stream=f"bench-mod-{seed}")
    n_posts = round(events * 0.75)
    campaigns = [spam_campaign(cfg, i, accounts=8, posts_each=5) for i in range(max(1, round(n_posts * spam_share / 40)))]
    spam = [(f"{cfg.prefix}-{c.name}-{rng.randrange(c.accounts):03d}", spam_post_body(rng, c))
            for c in campaigns for _ in range(c.accounts * c.posts_each)]
    legit = [(op.actor, dict(op.body or {})) for op in (ops.post() for _ in range(n_posts - len(spam)))]
    posts = legit + spam
    rng.shuffle(posts)
    base = int(time.time() * 1000) - 2 * HOUR_MS
    out: list[Record] = []
    sent: list[Record] = []
    for i, (author, body) in enumerate(posts):
        if sent and rng.random() < 0.02:
            out.append(rng.choice(sent))  # a redelivery: the very same event again
        ev = new_event(author, post_id=new_id(), author_id=author, text=body.get("text", ""), media=[],
                       links=list(body.get("links") or []), hashtags=[], mentions=[], visibility="PUBLIC")
        ev["occurred_at"] = base + i * 50
        rec = (POSTS.name, "PostCreated", ev)
        out.append(rec)
        sent.append(rec)
    targets = [int(v["post_id"]) for _, _, v in sent]
    for i in range(events - len(out)):
        user = f"c{rng.randrange(500)}"
        text = rng.choice(OFFENSIVE) if rng.random() < 0.03 else " ".join(
            rng.choice(COMMENT_WORDS) for _ in range(rng.randint(2, 8)))
        pid = rng.choice(targets)
        ev = new_event(user, comment_id=new_id(), post_id=pid, post_author_id="x", user_id=user, text=text,
                       parent_comment_id=None)
        ev["occurred_at"] = base + i * 50
        out.append((ENGAGEMENTS.name, "CommentAdded", ev))
    return out


def item_fields(topic: str, v: dict[str, Any]) -> tuple[str, int, str, str, list[str], int]:
    """``(content key, id, author, text, links, at)`` of a post or comment value."""
    if topic == POSTS.name:
        return f"post:{v['post_id']}", int(v["post_id"]), v["author_id"], v["text"], list(v["links"]), v["occurred_at"]
    return f"comment:{v['comment_id']}", int(v["comment_id"]), v["user_id"], v["text"], [], v["occurred_at"]


def reference(clf: Classifier, log: list[Record]) -> tuple[dict[str, list[ModelVerdict]], list[tuple[Any, Behaviour]]]:
    """The expected model verdict of every content: each topic's records in order, the behaviour facts
    folded as the worker's state would give them (no profiles, no graph: age unknown, 0 followers);
    also the classifier's inputs, in log order (for the ceilings). A redelivered content has one verdict
    per delivery, the last one in force."""
    facts: list[tuple[Any, Behaviour]] = []
    keys: list[str] = []
    for topic in (POSTS.name, ENGAGEMENTS.name):
        recent: dict[str, dict[int, int]] = {}
        bands: dict[str, set[str]] = {}
        for t, _, v in log:
            if t != topic:
                continue
            key, cid, author, text, links, at = item_fields(t, v)
            bk = band_keys(text)
            dup = set().union(*(bands.get(b, set()) for b in bk)) - {author} if bk else set()
            mine = recent.setdefault(author, {})
            mine[cid] = at
            rate = sum(1 for a in mine.values() if at - HOUR_MS < a <= at)
            for b in bk:
                bands.setdefault(b, set()).add(author)
            facts.append((content(text, links), Behaviour(None, 0, 0, rate, len(dup))))
            keys.append(key)
    out: dict[str, list[ModelVerdict]] = {}
    for key, mv in zip(keys, clf.classify(facts)):
        out.setdefault(key, []).append(mv)
    return out, facts


def classifier_ceiling(clf: Classifier, facts: list[tuple[Any, Behaviour]], batch: int) -> float:
    """Classifier-only events per CPU-second on these inputs, ``batch`` at a time."""
    clf.classify(facts[:10])
    t0 = time.process_time()
    for i in range(0, len(facts), batch):
        clf.classify(facts[i:i + batch])
    return len(facts) / max(1e-9, time.process_time() - t0)


def produce(s: Settings, log: list[Record]) -> None:
    """Produce the backlog, each topic on its partition 0 (one order per topic)."""
    serde = make_serde(s)
    prod = Producer(producer_config(s))
    errors: list[Any] = []
    for topic, name, v in log:
        key = str(v.get("post_id") if topic == POSTS.name else v["post_id"]).encode()
        prod.produce(topic, serde.encode(name, v, topic), key, partition=0,
                     headers=event_type_headers(f"io.feedstream.events.{name}"),
                     on_delivery=lambda err, _m: errors.append(err) if err else None)
        prod.poll(0)
    prod.flush(60)
    if errors:
        raise RuntimeError(f"{len(errors)} backlog records not delivered: {errors[0]}")


def fields(mv: ModelVerdict) -> dict[str, Any]:
    """The part of a stored model verdict the classifier decides."""
    return {"decision": mv.decision, "scores": mv.scores, "reasons": mv.reasons, "needs_review": mv.needs_review}


def verify(s: Settings, r: Any, sess: Any, expected: dict[str, list[ModelVerdict]]) -> dict[str, Any]:
    """Compare Redis and Cassandra with the expected verdicts; the mismatching keys (first 10).

    Redis holds the last delivery's verdict; Cassandra one of the deliveries' (a redelivery scored with
    the same content version ties on the write timestamp: Cassandra keeps the greater value)."""
    bad: list[str] = []
    keys = list(expected)
    p = r.pipeline(transaction=False)
    for k in keys:
        p.hget(mod.k_state(k), "m")
    redis_m = dict(zip(keys, p.execute()))
    hidden = {int(x) for x in r.smembers(mod.HIDDEN)}
    hidden_c = {int(x) for x in r.smembers(mod.HIDDEN_COMMENTS)}
    durable: dict[str, Any] = {}
    for kind in ("post", "comment"):
        ids = [int(k.split(":")[1]) for k in keys if k.startswith(kind + ":")]
        for i in range(0, len(ids), 100):
            for cid, (m, _d) in mod.decisions_durable(sess, ids[i:i + 100], kind).items():
                durable[f"{kind}:{cid}"] = m
    for k, mvs in expected.items():
        got = json.loads(redis_m[k]) if redis_m.get(k) else None
        cas = durable.get(k)
        cid = int(k.split(":")[1])
        in_hidden = cid in (hidden if k.startswith("post:") else hidden_c)
        ok = (got is not None and cas is not None and {f: got.get(f) for f in fields(mvs[-1])} == fields(mvs[-1])
              and any({f: cas.get(f) for f in fields(mv)} == fields(mv) for mv in mvs)
              and in_hidden == (mvs[-1].decision != "ALLOW"))
        if not ok:
            bad.append(k)
    return {"contents": len(expected), "mismatches": len(bad), "mismatch_keys": bad[:10],
            "redelivered": sum(1 for mvs in expected.values() if len(mvs) > 1),
            "decisions": {d: sum(1 for mvs in expected.values() if mvs[-1].decision == d)
                          for d in ("ALLOW", "LIMIT", "REMOVE")},
            "needs_review": sum(1 for mvs in expected.values() if mvs[-1].needs_review)}


def drain(base: Settings, s: Settings, r: Any, log: list[Record], profile: Path | None,
          timeout_s: float = 900) -> dict[str, Any]:
    """Produce the backlog, run one moderation worker over it, time the drain by its progress marks."""
    import shutil
    import subprocess
    import sys

    suffix = f"-drain-{uuid.uuid4().hex[:8]}"
    topics = (POSTS.name, ENGAGEMENTS.name, MODERATION.name)
    start = {t: end_offsets(s, t) for t in topics}
    group = group_id(s.model_copy(update={"topology_group_suffix": suffix}), "moderation")
    for t in topics:
        commit_at(s, group, t, start[t])
    produce(base, log)
    end = {t: end_offsets(s, t) for t in topics[:2]}
    want = {(t, p): o - 1 for t in end for p, o in end[t].items() if o > start[t].get(p, 0)}
    consume = ceilings.kafka_consume(s, POSTS.name, start[POSTS.name], end[POSTS.name])["value"]
    mark = progress.key("moderation")
    r.delete(mark)
    log_dir = Path(tempfile.mkdtemp(prefix="bench-moderation-drain-"))
    spy = None
    with workers(s, ("moderation",), log_dir=log_dir, topology_group_suffix=suffix) as procs:
        pid = procs[0].pid
        spy_bin = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        deadline = time.monotonic() + timeout_s
        first: tuple[float, float, dict[Any, int]] | None = None
        wm: dict[Any, int] = {}
        threads0: dict[str, float] = {}
        while time.monotonic() < deadline:
            wm = progress.parse(r.hgetall(mark))
            if wm and first is None:
                first = (time.perf_counter(), cpu_s(pid), dict(wm))
                threads0 = thread_cpu_s(pid)
                if profile is not None and Path(spy_bin).exists():
                    fmt = ["--function"] + (["--format", "raw"] if profile.suffix == ".txt" else [])
                    spy = subprocess.Popen([spy_bin, "record", "-p", str(pid), "-o", str(profile), "-r", "200",
                                            "-d", str(int(timeout_s)), "--nonblocking", *fmt],
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if all(wm.get(tp, -1) >= o for tp, o in want.items()):
                break
            time.sleep(0.01)
        t_end, c_end = time.perf_counter(), cpu_s(pid)
        threads = {k: v - threads0.get(k, 0) for k, v in thread_cpu_s(pid).items()} if first else {}
        if spy is not None:
            spy.send_signal(2)
            spy.wait(timeout=60)
    if first is None:
        return {"error": "worker applied nothing", "worker_log": str(log_dir / "moderation.log")}
    t0, c0, wm0 = first
    timed = sum(o - wm0.get(tp, start[tp[0]].get(tp[1], 0) - 1) for tp, o in want.items())
    wall, cpu = t_end - t0, c_end - c0
    return {"raw_consume_per_s": consume, "raw_consume_decode": consume_decode(s, POSTS.name, start=start[POSTS.name],
                                                                            end=end[POSTS.name]),
            "events_timed": timed,
            "drained": all(wm.get(tp, -1) >= o for tp, o in want.items()), "wall_s": wall, "worker_cpu_s": cpu,
            "events_per_s": timed / wall, "events_per_cpu_s": timed / cpu if cpu else None,
            "worker_log": str(log_dir / "moderation.log"), "flame_graph": str(profile) if spy is not None else None,
            "thread_cpu_s": dict(sorted(((k, round(v, 2)) for k, v in threads.items() if v > 0), key=lambda kv: -kv[1]))}


def run(base: Settings, events: int, profile: Path | None = None, seed: int | None = None) -> dict[str, Any]:
    """Pre-load, drain with one worker, verify against the in-process classifier; returns the report."""
    import os
    import subprocess

    s = isolated(base, "fs_bench_mod", 10)
    apply_all(base, echo=lambda *_: None)
    load = [os.getloadavg()]
    r = redis_store.client(s)
    r.flushdb()
    mod.mark_loaded(r)  # an empty state, not a lost one: no rebuild from the verdicts log
    sess = cassandra.session(s)
    seed = random.randrange(10**6) if seed is None else seed
    log = backlog(events, seed)
    domains = [d for d in s.moderation_blocked_domains.split(",") if d.strip()]
    clf = Classifier(domains)
    expected, facts = reference(clf, log)
    res = drain(base, s, r, log, profile)
    batched = classifier_ceiling(clf, facts, 500)
    single = classifier_ceiling(clf, facts[: min(len(facts), 2000)], 1)
    run_id = ceilings.new_run_id()
    hset = redis_hset(s, run_id)
    n_comments = sum(1 for t, _, _ in log if t == ENGAGEMENTS.name)
    try:  # counted from its second batch on: half the comments, so the first batch cannot hold them all
        faust = faust_consume(base, n_comments // 2)
    except subprocess.TimeoutExpired:
        faust = {"error": "timed out"}
    load.append(os.getloadavg())
    check = verify(s, r, sess, expected)
    per_cpu = res.get("events_per_cpu_s") or 0.0

    def ratio(ceiling: float | None) -> float | None:
        return per_cpu / ceiling if per_cpu and ceiling else None

    return {"events": len(log), "posts": len(log) - n_comments, "comments": n_comments, "seed": seed,
            "load_average": load, **res,
            "classifier_batched_per_cpu_s": batched, "classifier_single_per_cpu_s": single,
            "redis_hset_pipelined_per_s": hset, "faust_noop_consume": faust,
            "ratio_to_classifier_batched": ratio(batched), "ratio_to_classifier_single": ratio(single),
            "ratio_to_faust_noop": ratio(faust.get("events_per_cpu_s")),
            "ratio_to_consume_decode": ratio(res.get("raw_consume_decode", {}).get("events_per_cpu_s")),
            "verify": check}


def main() -> None:
    """CLI entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--out", default="moderation_drain.json", help="file name under bench/results")
    ap.add_argument("--profile", type=Path, default=None, help="py-spy flame graph (SVG) of the worker")
    args = ap.parse_args()
    res = run(get_settings(), args.events, args.profile, args.seed)
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / args.out).write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
