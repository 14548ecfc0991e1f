"""A pipelined batch agent: keep consuming while the previous batch's side effects run.

``faust_runtime.register_batch_agent`` uses ``stream.take_events``, which stops reading while the
handler runs and then collects for ``within_s``, so a batch holds only what arrives in that
window and a latency-bound handler (Cassandra LWT round trips) caps throughput at
``batch / handler time``. Here the stream is read with manual acks (``stream.noack()``) into a
buffer of at most ``max_batch`` events while a single consumer task processes the previous
buffer, so the batch grows with the load (adaptive batching) and batches stay strictly
sequential (one writer per post). Events are acked in offset order only after the handler
returned; a handler exception is logged and crashes the worker with nothing acked and no
commit after it (:func:`topologies.faust_runtime.crash_worker`), so the failed batch is re-read
when the exited worker is restarted. Poison records are dead-lettered and left out of the batch.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import faust
from mode import CrashingSupervisor

from streams.serde import Serde
from topologies import metrics as wmetrics
from topologies.faust_runtime import (
    SourceRecord,
    crash_worker,
    decode_batch,
    dlq_topic,
    topology_of,
)

log = logging.getLogger(__name__)
BatchHandler = Callable[[list[SourceRecord]], Awaitable[None]]
Validator = Callable[[SourceRecord], None]


def register_pipelined_agent(app: faust.App, source: faust.TopicT, handler: BatchHandler, *,
                             serde: Serde, name: str, validate: Validator | None = None,
                             max_batch: int = 1000) -> Any:
    """Register an agent calling ``handler`` on sequential, load-sized batches (see module doc)."""
    dlq = dlq_topic(app)
    group = app.conf.id

    async def process(stream: faust.StreamT) -> None:
        manual = stream.noack()  # type: ignore[attr-defined]  # missing from StreamT
        pending: list[Any] = []
        has_items, has_room = asyncio.Event(), asyncio.Event()
        has_room.set()

        async def run_batches() -> None:
            while True:
                await has_items.wait()
                events = pending[:]
                pending.clear()
                has_items.clear()
                has_room.set()
                started = time.perf_counter()
                recs = await decode_batch(app, serde, dlq, group, events, validate)
                try:
                    if recs:
                        await handler(recs)
                    wmetrics.observe_batch(topology_of(app), recs, started, len(events))
                except Exception as exc:
                    crash_worker(app, exc)  # no commit from here on; the process exits
                    first = events[0].message
                    log.exception("%s crashed on a batch of %d from %s[%d]@%d", name, len(events),
                                  first.topic, first.partition, first.offset)
                    await app.crash(exc)
                    raise
                for event in events:
                    await manual.ack(event)

        task = asyncio.ensure_future(run_batches())
        try:
            async for event in manual.events():
                pending.append(event)
                has_items.set()
                if len(pending) >= max_batch:
                    has_room.clear()
                    await has_room.wait()
        finally:
            task.cancel()

    process.__name__ = name.replace("-", "_")
    # no in-process restart: it would go on from the stream's position, past the failed batch
    return app.agent(source, name=name, supervisor_strategy=CrashingSupervisor)(process)
