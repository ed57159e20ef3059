"""Spans leave the process by OTLP only when an endpoint is configured; otherwise nothing is
installed and nothing recorded, while a caller's trace context still passes through."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, use_span

from shared.tracing import ENDPOINT_VARIABLES, configure, current_traceparent, publishing

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
PROBE = """
from opentelemetry import trace
from shared.tracing import configure
assert configure("enrolment")
provider = trace.get_tracer_provider()
[processor] = provider._active_span_processor._span_processors
print(type(processor).__name__, type(processor.span_exporter).__name__)
print(provider.resource.attributes["service.name"])
"""


def test_without_an_endpoint_nothing_is_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENDPOINT_VARIABLES:
        monkeypatch.delenv(name, raising=False)

    before = trace.get_tracer_provider()

    assert configure("enrolment") is False
    assert trace.get_tracer_provider() is before


def test_with_an_endpoint_spans_are_batched_to_the_otlp_exporter() -> None:
    # In a process of its own: a tracer provider is installed once per process.
    env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}
    probe = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, cwd=ROOT, capture_output=True, text=True, check=True
    )

    assert probe.stdout.split("\n")[:2] == [
        "BatchSpanProcessor OTLPSpanExporter",
        "berlian-enrolment",
    ]


def test_a_callers_trace_passes_on_to_the_record_even_when_nothing_is_recorded() -> None:
    caller = SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    with use_span(NonRecordingSpan(caller)):
        stored = current_traceparent()

    assert stored == f"00-{0xABC:032x}-{0xDEF:016x}-01"
    with publishing("berlian.enrolment.events", stored, {}) as headers:
        [(name, value)] = headers
    assert name == "traceparent"
    assert value.decode().startswith(f"00-{0xABC:032x}-")


def test_a_bad_traceparent_continues_no_trace_not_even_the_one_around_the_relay() -> None:
    around = SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    with (
        use_span(NonRecordingSpan(around)),
        publishing("berlian.enrolment.events", "not-a-traceparent" * 20, {}) as headers,
    ):
        pass

    assert not any(f"{0xABC:032x}" in value.decode() for _, value in headers)
