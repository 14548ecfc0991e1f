"""core.tracing: off by default (hooks do nothing), W3C traceparent through Kafka headers and pub/sub."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from core import tracing
from core.settings import Settings
from stores import timelines as tls


@pytest.fixture
def memory() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    assert tracing.setup(Settings(), "test", provider=provider)
    try:
        yield exporter
    finally:
        tracing.setup(Settings(), "test")  # off again for the rest of the process


def test_off_by_default_every_hook_is_a_no_op() -> None:
    assert Settings().tracing_exporter == "none"
    assert tracing.setup(Settings(), "api") is False and tracing.ENABLED is False
    headers = [("event-type", b"x")]
    assert tracing.inject(headers) is headers
    assert tracing.traceparent_of([("traceparent", b"00-" + b"1" * 32 + b"-" + b"2" * 16 + b"-01")]) is None
    assert tracing.start_span("x") is None and tracing.record_spans(["p", None], "x") == [None, None]
    with tracing.span("x") as sp:
        assert sp is None


def test_producer_header_and_consumer_span_join_one_trace(memory: InMemorySpanExporter) -> None:
    with tracing.span("POST /v1/posts", kind=tracing.SpanKind.SERVER) as server:
        producer = tracing.start_span("posts.v1 publish", kind=tracing.SpanKind.PRODUCER)
        headers = tracing.with_parent([("event-type", b"io.feedstream.PostCreated")], producer)
        producer.end()
    parent = tracing.traceparent_of(headers)
    assert parent is not None and tracing.traceparent_of(dict(headers)) == parent  # pairs or a mapping
    (consumer, untraced) = tracing.record_spans([parent, None], "fanout apply")
    assert untraced is None
    tracing.end_all([consumer], RuntimeError("boom"))
    spans = {s.name: s for s in memory.get_finished_spans()}
    assert set(spans) == {"POST /v1/posts", "posts.v1 publish", "fanout apply"}
    trace_ids = {s.context.trace_id for s in spans.values()}
    assert trace_ids == {server.context.trace_id}
    assert spans["posts.v1 publish"].parent.span_id == server.context.span_id
    assert spans["fanout apply"].parent.span_id == spans["posts.v1 publish"].context.span_id
    assert not spans["fanout apply"].status.is_ok and spans["fanout apply"].events[0].name == "exception"


def test_timeline_message_carries_the_trace_only_when_traced() -> None:
    src = {"ts": 1, "topic": "posts.v1", "partition": 0, "offset": 5}
    assert json.loads(tls.message(7, "ann", "ADD", src)) == {"post_id": 7, "author_id": "ann", "op": "ADD"}
    traced = json.loads(tls.message(7, "ann", "ADD", {**src, "traceparent": "00-abc"}))
    assert traced["traceparent"] == "00-abc"


def test_file_exporter_writes_one_json_span_a_line(tmp_path: Path) -> None:
    out = tmp_path / "spans.jsonl"
    try:
        assert tracing.setup(Settings(tracing_exporter="file", tracing_file=out), "fanout")
        with tracing.span("a"), tracing.span("b"):
            pass
    finally:
        tracing.shutdown()
        tracing.setup(Settings(), "test")
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [s["name"] for s in lines] == ["b", "a"]
    assert lines[0]["parent_id"] == lines[1]["context"]["span_id"]
    assert lines[0]["resource"]["attributes"]["service.name"] == "feedstream-fanout"


def test_file_exporter_without_a_file_says_what_to_set() -> None:
    with pytest.raises(ValueError, match="FEEDSTREAM_TRACING_FILE"):
        tracing.setup(Settings(tracing_exporter="file"), "fanout")


def test_push_span_continues_the_fanout_span_and_clients_never_see_the_header(
        memory: InMemorySpanExporter) -> None:
    from serving.realtime import Client, Hub

    fanout = tracing.start_span("fanout apply")
    parent = tracing.traceparent_of_span(fanout)
    hub, client = Hub("redis://127.0.0.1:1"), Client(4)  # no connection is made by dispatch
    hub.clients["bob"] = {client}
    hub.dispatch("feed:bob", tls.message(7, "ann", "ADD", {"traceparent": parent}))
    hub.dispatch("feed:bob", tls.message(8, "ann", "ADD", {}))  # untraced: no span
    assert client.queue.get_nowait() == {"type": "feed", "post_id": 7, "author_id": "ann", "op": "ADD"}
    (push,) = memory.get_finished_spans()
    assert push.name == "feed push" and push.parent.span_id == fanout.get_span_context().span_id
    assert push.attributes["feedstream.reader"] == "bob"


def test_obs_cost_ratios_are_medians_over_the_reference_variant() -> None:
    from bench.obs_cost import summarise

    samples = {"metrics": {"feed": [(1000, 0.002), (900, 0.0022), (1100, 0.0018)]},
               "no-metrics": {"feed": [(1100, 0.0019), (1000, 0.0020), (1200, 0.0016)]}}
    figs = summarise(samples, "metrics")
    assert figs["metrics"]["feed"] == {"rate_per_s": 1000, "cpu_ms_per_req": 2.0, "cpu_ms_range": [1.8, 2.2],
                                       "rounds": 3, "cpu_vs_metrics": 1.0, "rate_vs_metrics": 1.0}
    assert figs["no-metrics"]["feed"]["cpu_vs_metrics"] == 0.95
    assert figs["no-metrics"]["feed"]["rate_vs_metrics"] == 1.1


def test_otlp_exporter_posts_the_spans_to_the_configured_endpoint() -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    got: list[tuple[str, bytes]] = []

    class Collector(BaseHTTPRequestHandler):  # a tiny OTLP/HTTP receiver
        def do_POST(self) -> None:
            got.append((self.path, self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1/traces"
    try:
        assert tracing.setup(Settings(tracing_exporter="otlp", tracing_otlp_endpoint=url), "api")
        with tracing.span("POST /v1/posts"):
            pass
        tracing.shutdown()  # flushes the batch processor
    finally:
        tracing.setup(Settings(), "test")
        server.shutdown()
        server.server_close()
    assert [p for p, _ in got] == ["/v1/traces"]
    req = ExportTraceServiceRequest.FromString(got[0][1])
    (rs,) = req.resource_spans
    assert {a.key: a.value.string_value for a in rs.resource.attributes}["service.name"] == "feedstream-api"
    assert [s.name for ss in rs.scope_spans for s in ss.spans] == ["POST /v1/posts"]
