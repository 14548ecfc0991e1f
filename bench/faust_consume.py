"""Faust's own per-message cost: the engagement app's pipelined agent with a no-op handler.

``python -m bench.faust_consume N [PAUSE_S]`` (a child process of :mod:`bench.engagement_drain`):
builds a Faust app with the engagement worker's pipelined agent on ``engagements.v1`` alone (every
batch of decoded engagements goes to a handler that only counts them and waits ``PAUSE_S``, as a
latency-bound handler would, so batches grow), with a new consumer group reading from the
earliest offset, and prints as JSON the wall and process CPU seconds from the first batch until
``N`` engagements were handed over, with the batch sizes. What is left is Faust + aiokafka
fetching, the per-event stream machinery, manual acks and the Avro decode: the ceiling of any
engagement handler run on this agent.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from typing import Any

from core.settings import get_settings
from streams.catalog import ENGAGEMENTS
from topologies.engagement.app import MAX_BATCH
from topologies.engagement.batching import register_pipelined_agent
from topologies.faust_runtime import catalog_topic, create_faust_app, make_serde, run_worker


def main() -> None:
    """CLI entry point (see the module doc)."""
    want = int(sys.argv[1])
    pause_s = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0  # a handler's latency (no CPU)
    s = get_settings().model_copy(update={"topology_offset_reset": "earliest",
                                          "topology_group_suffix": f"-faust-{uuid.uuid4().hex[:8]}"})
    state: dict[str, Any] = {"n": 0, "batches": []}

    async def handler(batch: list[Any]) -> None:
        if not state["batches"]:
            state["t0"], state["c0"] = time.perf_counter(), time.process_time()
        state["n"] += len(batch)
        state["batches"].append(len(batch))
        if pause_s:
            await asyncio.sleep(pause_s)
        if state["n"] - state["batches"][0] >= want:
            n = state["n"] - state["batches"][0]
            wall, cpu = time.perf_counter() - state["t0"], time.process_time() - state["c0"]
            sizes = state["batches"]
            print(json.dumps({"events": n, "wall_s": wall, "cpu_s": cpu, "events_per_s": n / wall,
                              "events_per_cpu_s": n / cpu, "batches": len(sizes),
                              "mean_batch": sum(sizes) / len(sizes), "max_batch": max(sizes)}), flush=True)
            os._exit(0)

    app = create_faust_app(s, "engagement")
    register_pipelined_agent(app, catalog_topic(app, ENGAGEMENTS, s), handler, serde=make_serde(s),
                             name="engagement-events", max_batch=MAX_BATCH)
    run_worker(app)


if __name__ == "__main__":
    main()
