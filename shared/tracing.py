"""Distributed traces: one trace follows a command from its HTTP request through the event
store, the outbox relay, the topic and every consumer and reaction of the other services.

The W3C ``traceparent`` of the appending request is stored with each outbox row; the relay
publishes the record in a span continuing that trace and carries the span's ``traceparent`` in
the record's headers; a consumer applies the record in a span continuing it, so a reaction
appended there (an outbox row of its own) continues the same trace again.

Spans are exported by OTLP over HTTP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set, and not recorded at all otherwise; the context
still passes through, so a caller's trace goes on in the next service that records.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
)
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import Attributes

TRACEPARENT = "traceparent"
# The W3C header is 55 characters; anything much longer in a record's header is not one.
MAX_TRACEPARENT = 128
_W3C = TraceContextTextMapPropagator()
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


def tracer() -> trace.Tracer:
    return trace.get_tracer("berlian")


class _NoUntracedQueries(Sampler):
    """Every span within a trace, and every new trace except a database call's: the relay's and
    the consumers' polling would otherwise be a trace of one query every second."""

    def __init__(self) -> None:
        self._within = ParentBased(ALWAYS_ON)

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: trace.TraceState | None = None,
    ) -> SamplingResult:
        parent = trace.get_current_span(parent_context).get_span_context()
        if not parent.is_valid and kind == SpanKind.CLIENT:
            return SamplingResult(Decision.DROP)
        return self._within.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return "NoUntracedQueries"


def configure(service: str, processor: SpanProcessor | None = None) -> bool:
    """Record this process's spans, by OTLP when an endpoint is configured or into
    ``processor``; return whether spans are recorded. Without either, nothing is installed."""
    if processor is None:
        if not any(os.environ.get(name) for name in ENDPOINT_VARIABLES):
            return False
        # Imported here: the exporter's HTTP client is loaded only when spans leave the process.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        processor = BatchSpanProcessor(OTLPSpanExporter())
    provider = TracerProvider(
        resource=Resource.create({"service.name": f"berlian-{service}"}),
        sampler=_NoUntracedQueries(),
    )
    provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)
    AsyncPGInstrumentor().instrument(tracer_provider=provider)  # type: ignore[no-untyped-call]
    return True


def current_traceparent() -> str | None:
    """The W3C traceparent of the span in progress, to store beside what it appends."""
    carrier: dict[str, str] = {}
    _W3C.inject(carrier)
    return carrier.get(TRACEPARENT)


def _context_of(traceparent: str | None) -> Context:
    if not traceparent or len(traceparent) > MAX_TRACEPARENT:
        return Context()  # a new trace: never the context of whatever runs around the call
    return _W3C.extract({TRACEPARENT: traceparent}, context=Context())


def header_value(headers: Sequence[tuple[str, bytes]] | None, name: str) -> str | None:
    for key, value in headers or ():
        if key == name:
            return value.decode(errors="replace")
    return None


@contextmanager
def publishing(
    topic: str, traceparent: str | None, attributes: Mapping[str, str]
) -> Iterator[list[tuple[str, bytes]]]:
    """A span publishing one record, continuing the trace that appended it; yields the headers
    that carry this span to the consumers."""
    with tracer().start_as_current_span(
        f"publish {topic}",
        context=_context_of(traceparent),
        kind=SpanKind.PRODUCER,
        attributes={"messaging.system": "kafka", "messaging.destination.name": topic, **attributes},
    ):
        carried = current_traceparent()
        yield [(TRACEPARENT, carried.encode())] if carried else []


@contextmanager
def consuming(
    consumer: str,
    topic: str,
    partition: int,
    offset: int,
    headers: Sequence[tuple[str, bytes]] | None,
) -> Iterator[None]:
    """A span applying one record, continuing the trace its headers carry; what the consumer
    appends meanwhile (a reaction) continues it too."""
    with tracer().start_as_current_span(
        f"consume {topic}",
        context=_context_of(header_value(headers, TRACEPARENT)),
        kind=SpanKind.CONSUMER,
        attributes={
            "messaging.system": "kafka",
            "messaging.destination.name": topic,
            "messaging.destination.partition.id": str(partition),
            "messaging.kafka.offset": offset,
            "messaging.consumer.group.name": consumer,
        },
    ):
        yield


def trace_id() -> str | None:
    """The current trace's id in hex (as tracing backends show it), if a trace is in progress."""
    span_context = trace.get_current_span().get_span_context()
    return format(span_context.trace_id, "032x") if span_context.is_valid else None
