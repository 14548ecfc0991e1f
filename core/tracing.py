"""OpenTelemetry tracing, off by default: one post's trace runs API → Kafka → fan-out → realtime push.

:func:`setup` (called once by each process: the API, every worker) installs a tracer provider when
``settings.tracing_exporter`` is ``otlp`` (OTLP/HTTP to ``tracing_otlp_endpoint``) or ``file`` (one
JSON span a line appended to ``tracing_file``: tests and debugging). With ``none`` (the default)
nothing is installed and :data:`ENABLED` stays False, so each hook below is one boolean test.

The context crosses process boundaries as a W3C ``traceparent``: in Kafka record headers
(:func:`inject` by the producer, :func:`traceparent_of` in the workers' glue) and in the pub/sub
message the fan-out publishes for the realtime push (its ``traceparent`` field).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from typing import IO, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from core.settings import Settings

HEADER = "traceparent"
ENABLED = False  # set by setup(); the hooks cost one check of it when tracing is off
_PROPAGATOR = TraceContextTextMapPropagator()
_TRACER: trace.Tracer = trace.NoOpTracer()
_PROVIDER: Any = None
_LOCK = threading.Lock()


def setup(settings: Settings, service: str, *, provider: Any = None) -> bool:
    """Install tracing for this process (``service``: ``api``, ``fanout``…); True if it is on.

    ``provider``: a ready SDK ``TracerProvider`` (tests pass one with an in-memory exporter).
    """
    global ENABLED, _TRACER, _PROVIDER
    if provider is None:
        provider = _provider(settings, service)
    with _LOCK:
        if provider is None:
            ENABLED, _TRACER, _PROVIDER = False, trace.NoOpTracer(), None
            return False
        ENABLED, _TRACER, _PROVIDER = True, provider.get_tracer("feedstream"), provider
    return True


def _provider(settings: Settings, service: str) -> Any:
    if settings.tracing_exporter == "none":
        return None
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    provider = TracerProvider(resource=Resource.create({"service.name": f"feedstream-{service}"}),
                              sampler=ParentBased(TraceIdRatioBased(settings.tracing_sample_ratio)))
    if settings.tracing_exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=settings.tracing_otlp_endpoint)))
    else:  # file: each span written as it ends, so a killed worker loses none
        if settings.tracing_file is None:
            raise ValueError("FEEDSTREAM_TRACING_EXPORTER=file needs FEEDSTREAM_TRACING_FILE (a path to append to)")
        provider.add_span_processor(SimpleSpanProcessor(_file_exporter(settings.tracing_file.open("a"))))
    return provider


def _file_exporter(out: IO[str]) -> Any:
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    return ConsoleSpanExporter(out=out, formatter=lambda span: span.to_json(indent=None) + "\n")


def inject(headers: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """``headers`` plus the current span's ``traceparent`` (unchanged when tracing is off)."""
    if not ENABLED:
        return headers
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return [*headers, (HEADER, carrier[HEADER].encode())] if HEADER in carrier else headers


def with_parent(headers: list[tuple[str, bytes]], sp: Span) -> list[tuple[str, bytes]]:
    """``headers`` plus a ``traceparent`` naming ``sp`` (a producer span) as the consumer's parent."""
    return [*headers, (HEADER, traceparent_of_span(sp).encode())]


def end_delivery(sp: Span, err: Any, msg: Any) -> None:
    """End a producer span with its delivery report (partition and offset, or the error)."""
    if err is not None:
        sp.set_status(trace.StatusCode.ERROR, str(err))
    else:
        sp.set_attributes({"messaging.destination.partition.id": str(msg.partition()),
                           "messaging.kafka.offset": msg.offset() or 0})
    sp.end()


def traceparent_of(headers: Any) -> str | None:
    """The ``traceparent`` of Kafka record headers (a list of pairs or a mapping), if any."""
    if not ENABLED or not headers:
        return None
    pairs = headers.items() if hasattr(headers, "items") else headers
    for key, value in pairs:
        if key == HEADER:
            return value.decode() if isinstance(value, bytes) else str(value)
    return None


def current_traceparent() -> str | None:
    """The current span's ``traceparent`` (to put in a message that crosses processes), or None."""
    if not ENABLED:
        return None
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get(HEADER)


@contextlib.contextmanager
def span(name: str, *, parent: str | None = None, kind: SpanKind = SpanKind.INTERNAL,
         attributes: dict[str, Any] | None = None) -> Iterator[Span | None]:
    """A span named ``name`` (child of ``parent``, a traceparent, else of the current span); None when off."""
    if not ENABLED:
        yield None
        return
    ctx = _PROPAGATOR.extract({HEADER: parent}) if parent else None
    with _TRACER.start_as_current_span(name, context=ctx, kind=kind, attributes=attributes) as sp:
        yield sp


def start_span(name: str, *, parent: str | None = None, kind: SpanKind = SpanKind.INTERNAL,
               attributes: dict[str, Any] | None = None) -> Span | None:
    """A started span (not made current; end it yourself), or None when tracing is off."""
    if not ENABLED:
        return None
    ctx = _PROPAGATOR.extract({HEADER: parent}) if parent else otel_context.get_current()
    return _TRACER.start_span(name, context=ctx, kind=kind, attributes=attributes)


def traceparent_of_span(sp: Span) -> str:
    """The W3C ``traceparent`` naming ``sp`` as the parent."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(sp))
    return carrier[HEADER]


def record_spans(parents: Sequence[str | None], name: str, *, kind: SpanKind = SpanKind.CONSUMER,
                 attributes: Sequence[dict[str, Any]] | None = None) -> list[Span | None]:
    """One started span per traced item of a batch (``parents``: each item's traceparent or None)."""
    if not ENABLED:
        return [None] * len(parents)
    attrs = attributes or [{}] * len(parents)
    return [start_span(name, parent=p, kind=kind, attributes=a) if p else None for p, a in zip(parents, attrs)]


def end_all(spans: Sequence[Span | None], error: BaseException | None = None) -> None:
    """End the started spans of a batch (marked as failed with ``error``)."""
    for sp in spans:
        if sp is not None:
            if error is not None:
                sp.record_exception(error)
                sp.set_status(trace.StatusCode.ERROR, type(error).__name__)
            sp.end()


def shutdown() -> None:
    """Flush and stop the installed provider (at process exit)."""
    if _PROVIDER is not None:
        _PROVIDER.shutdown()
