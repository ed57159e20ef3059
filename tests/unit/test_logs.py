"""Every logger writes one JSON object per line, with the service's name, and the correlation
and trace ids of the work in hand."""

from __future__ import annotations

import json
import logging
import uuid

import pytest
from opentelemetry.trace import NonRecordingSpan, SpanContext, use_span

from shared.logs import configure, correlated, parse_correlation

pytestmark = pytest.mark.unit


def test_standard_library_loggers_write_json_lines_with_the_service(
    capfd: pytest.CaptureFixture[str],
) -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        configure("billing")
        logging.getLogger("shared.relay.outbox").warning("relay %s waits", "billing")
        line = capfd.readouterr().out.strip().splitlines()[-1]
    finally:
        root.handlers, root.level = saved[0], saved[1]

    record = json.loads(line)
    assert record["service"] == "billing"
    assert record["level"] == "warning"
    assert record["event"] == "relay billing waits"
    assert "timestamp" in record


def test_lines_written_while_handling_a_request_carry_its_correlation_and_trace_ids(
    capfd: pytest.CaptureFixture[str],
) -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    correlation = uuid.uuid4()
    parent = NonRecordingSpan(SpanContext(0x1234, 0x5678, is_remote=True))
    try:
        configure("enrolment")
        with correlated(correlation), use_span(parent):
            logging.getLogger("services.enrolment").info("registered")
        logging.getLogger("services.enrolment").info("idle")
        inside, outside = capfd.readouterr().out.strip().splitlines()[-2:]
    finally:
        root.handlers, root.level = saved[0], saved[1]

    assert json.loads(inside)["correlation_id"] == str(correlation)
    assert json.loads(inside)["trace_id"] == f"{0x1234:032x}"
    assert "correlation_id" not in json.loads(outside)
    assert "trace_id" not in json.loads(outside)


def test_a_callers_correlation_id_is_taken_only_when_it_is_a_uuid() -> None:
    given = uuid.uuid4()

    assert parse_correlation(str(given)) == given
    assert parse_correlation("not-a-uuid") is None
    assert parse_correlation("0" * 10_000) is None
    assert parse_correlation(None) is None
