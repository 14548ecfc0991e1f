"""Backbone benchmark: Avro produce/consume msgs/s next to raw-bytes confluent-kafka in the same run.

``python -m bench.backbone --count 50000`` against the configured Kafka and schema registry.
Every phase moves the same number of PostCreated-sized records through its own scratch topic;
ratios are Avro throughput divided by the raw ceiling measured a moment before.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import uuid
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from core.settings import REPO_ROOT, Settings, get_settings
from streams.admin import apply_topics, delete_topics
from streams.catalog import POSTS, Topic
from streams.consumer import EventConsumer, consumer_config
from streams.producer import EventProducer, producer_config
from streams.samples import sample_event
from streams.serde import Serde

RESULTS = REPO_ROOT / "bench" / "results"


@dataclass(frozen=True)
class Phase:
    """One measured phase."""

    name: str
    count: int
    seconds: float
    ceiling: str | None = None

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0


def _events(count: int, distinct: int = 1000) -> list[dict[str, Any]]:
    pool = [sample_event("PostCreated", author_id=f"u{i % 200}", text=f"post {i} #bench", hashtags=["bench"])
            for i in range(min(count, distinct))]
    return [pool[i % len(pool)] for i in range(count)]


def _raw_produce(settings: Settings, topic: str, payloads: list[bytes], keys: list[bytes]) -> float:
    producer = Producer(producer_config(settings))
    failed = 0

    def on_delivery(err, _msg) -> None:
        nonlocal failed
        failed += err is not None

    producer.produce(topic, payloads[0], keys[0])  # warm: metadata, connection, producer id
    producer.flush(30)
    start = time.perf_counter()
    for i, (payload, key) in enumerate(zip(payloads, keys)):
        while True:
            try:
                producer.produce(topic, payload, key, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.01)
        if i % 1000 == 0:
            producer.poll(0)
    left = producer.flush(60)
    took = time.perf_counter() - start
    if failed or left:
        raise RuntimeError(f"raw produce: {failed} failed, {left} undelivered")
    return took


def _avro_produce(settings: Settings, serde: Serde, topic: Topic, events: list[dict[str, Any]]) -> float:
    with EventProducer(settings, serde=serde) as producer:
        producer.send("PostCreated", events[0], topic=topic)  # warm: registry lookup, connection
        start = time.perf_counter()
        futures = [producer.submit("PostCreated", e, topic=topic) for e in events[1:]]
        for future in futures:
            future.result(60)
        return time.perf_counter() - start


def _raw_consume(settings: Settings, topic: str, partitions: int, count: int) -> float:
    consumer = Consumer(consumer_config(settings, f"bench-{uuid.uuid4().hex}"))
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    seen, start = 0, 0.0
    while seen < count + 1:  # + the warm-up record
        batch = consumer.consume(1000, 0.05)
        if batch and not start:
            start = time.perf_counter()  # from the first fetched batch, as for the Avro consumer
        seen += sum(1 for m in batch if m.error() is None)
    took = time.perf_counter() - start
    consumer.close()
    return took


def _avro_consume(settings: Settings, serde: Serde, topic: str, count: int) -> float:
    handled, start = 0, 0.0

    def handler(_event) -> None:
        nonlocal handled, start
        if not handled:
            start = time.perf_counter()
        handled += 1

    consumer = EventConsumer([topic], f"bench-{uuid.uuid4().hex}", handler, settings=settings, serde=serde,
                             batch_size=1000)
    while handled < count + 1:  # + the warm-up record
        consumer.poll(0.05)
    took = time.perf_counter() - start
    consumer.close()
    return took


def _cpu(serde: Serde, events: list[dict[str, Any]], topic: Topic) -> tuple[float, float]:
    sample = events[: min(len(events), 20_000)]
    start = time.perf_counter()
    blobs = [serde.encode("PostCreated", e, topic.name) for e in sample]
    encode = time.perf_counter() - start
    start = time.perf_counter()
    for blob in blobs:
        serde.decode(blob)
    decode = time.perf_counter() - start
    return encode / len(sample) * 1e6, decode / len(sample) * 1e6


def run(settings: Settings, count: int, partitions: int) -> dict[str, Any]:
    """Run every phase on fresh scratch topics and return the results."""
    tag = uuid.uuid4().hex[:8]
    raw_t = replace(POSTS, name=f"bench-raw-{tag}", partitions=partitions, retention_ms=3_600_000)
    avro_t = replace(POSTS, name=f"bench-avro-{tag}", partitions=partitions, retention_ms=3_600_000)
    apply_topics(settings, topics=[raw_t, avro_t])
    serde = Serde(settings.registry_url)
    try:
        events = _events(count + 1)
        payloads = [serde.encode("PostCreated", e, avro_t.name) for e in events[1:]]
        keys = [e["author_id"].encode() for e in events[1:]]
        phases = [Phase("raw produce (bytes, idempotent, acks=all)", count,
                        _raw_produce(settings, raw_t.name, payloads, keys))]
        phases.append(Phase("avro produce (validate+encode+confirm)", count,
                            _avro_produce(settings, serde, avro_t, events), phases[0].name))
        phases.append(Phase("raw consume (bytes)", count, _raw_consume(settings, raw_t.name, partitions, count)))
        phases.append(Phase("avro consume (decode+handler+commit)", count,
                            _avro_consume(settings, Serde(settings.registry_url), avro_t.name, count),
                            phases[2].name))
        encode_us, decode_us = _cpu(serde, events, avro_t)
    finally:
        delete_topics([raw_t.name, avro_t.name], settings)
    rates = {p.name: p.rate for p in phases}
    return {
        "benchmark": "backbone",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": platform.node(),
        "count": count,
        "partitions": partitions,
        "payload_bytes": len(payloads[0]),
        "encode_us_per_msg": round(encode_us, 2),
        "decode_us_per_msg": round(decode_us, 2),
        "phases": [{**asdict(p), "msgs_per_s": round(p.rate),
                    "ratio_vs_raw": round(p.rate / rates[p.ceiling], 3) if p.ceiling else None}
                   for p in phases],
    }


def report(result: dict[str, Any]) -> str:
    """Format results as a small table."""
    lines = [(f"backbone benchmark: {result['count']} records of {result['payload_bytes']} B, "
              f"{result['partitions']} partitions"),
             f"{'phase':44} {'msgs/s':>10} {'seconds':>8} {'vs raw':>7}"]
    for p in result["phases"]:
        ratio = f"{p['ratio_vs_raw']:.2f}" if p["ratio_vs_raw"] is not None else "1.00"
        lines.append(f"{p['name']:44} {p['msgs_per_s']:>10,} {p['seconds']:>8.2f} {ratio:>7}")
    lines.append(f"CPU per record: encode {result['encode_us_per_msg']} us, decode {result['decode_us_per_msg']} us")
    return "\n".join(lines)


def _plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [p["name"].split(" (")[0] for p in result["phases"]]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.barh(names, [p["msgs_per_s"] for p in result["phases"]], color=["#999", "#36c", "#999", "#36c"])
    ax.set_xlabel("msgs/s")
    ax.set_title(f"backbone: {result['count']} PostCreated records")
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table, save backbone.json (and .png) under bench/results/."""
    parser = argparse.ArgumentParser(prog="python -m bench.backbone", description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=50_000, help="records per phase (default 50000)")
    parser.add_argument("--partitions", type=int, default=3, help="partitions of the scratch topics")
    parser.add_argument("--out", type=Path, default=RESULTS, help="directory for JSON and PNG")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG")
    args = parser.parse_args(argv)
    result = run(get_settings(), args.count, args.partitions)
    print(report(result))
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / "backbone"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    if not args.no_plot:
        _plot(result, stem.with_suffix(".png"))
    print(f"saved {stem.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
