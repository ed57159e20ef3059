"""One trace follows a registration on the real stack: enrolment's HTTP request, its relay's
publish of the event, and verification's consumption of it, each span the child of the last;
the caller gets the correlation id its events carry."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import orjson
import pytest
from opentelemetry import trace
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from services.enrolment import wiring as enrolment_wiring
from services.verification import wiring as verification_wiring
from shared.auth import AuthSettings
from shared.logs import CORRELATION_HEADER
from shared.projection.freshness import wait_until_caught_up
from shared.settings import DatabaseSettings, KafkaSettings
from shared.topic_reader import read_topics
from shared.tracing import configure
from tests.integration.sandbox import isolated, running
from tests.tokens import bearer

pytestmark = pytest.mark.integration
SAPURO = "33.75.01.1004"


@pytest.fixture(scope="module")
def spans() -> Iterator[InMemorySpanExporter]:
    """This process's spans, kept in memory (a service would send them by OTLP)."""
    exporter = InMemorySpanExporter()
    assert configure("test", SimpleSpanProcessor(exporter))
    yield exporter
    AsyncPGInstrumentor().uninstrument()  # type: ignore[no-untyped-call]
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    provider.shutdown()


def ancestry(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> list[ReadableSpan]:
    """The span and its parents, up to the root of the trace."""
    chain = [span]
    while chain[-1].parent is not None and chain[-1].parent.span_id in by_id:
        chain.append(by_id[chain[-1].parent.span_id])
    return chain


async def test_one_trace_links_the_request_the_publish_and_another_services_consumption(
    spans: InMemorySpanExporter, kafka_settings: KafkaSettings, database_settings: DatabaseSettings
) -> None:
    kafka = await isolated(kafka_settings, database_settings, "trace")
    auth = AuthSettings()
    enrolment, _ = await enrolment_wiring.build(kafka, database_settings, auth)
    verification, _ = await verification_wiring.build(kafka, database_settings, auth)
    given = uuid.uuid4()
    async with running(enrolment) as api, running(verification):
        response = await api.post(
            "/workers",
            json={
                "nik": "3375014507800001",
                "full_name": "Siti Aminah",
                "birth_date": "1980-07-05",
                "sex": "F",
                "occupation_code": "buruh_batik",
                "kelurahan_code": SAPURO,
                "address": "Sapuro",
            },
            headers={**bearer("kelurahan_officer", SAPURO), CORRELATION_HEADER: str(given)},
        )
        assert response.status_code == 201, response.text
        for projection in verification.runners:
            await wait_until_caught_up(
                verification.pool,
                "verification",
                projection.writer.projection.name,
                kafka,
                projection.writer.projection.sources,
                max_wait=60,
            )

    # The caller's correlation id is returned and carried by the event.
    assert response.headers[CORRELATION_HEADER] == str(given)
    topic = kafka.events_topic("enrolment")
    [record] = [r async for batch in read_topics(kafka, [topic]) for r in batch]
    assert orjson.loads(record.value)["correlation_id"] == str(given)

    finished = spans.get_finished_spans()
    by_id = {s.context.span_id: s for s in finished}
    [request] = [s for s in finished if s.kind == SpanKind.SERVER and s.name == "POST /workers"]
    in_trace = [s for s in finished if s.context.trace_id == request.context.trace_id]
    [publish] = [
        s for s in in_trace if s.kind == SpanKind.PRODUCER and s.name == f"publish {topic}"
    ]
    consumed = [
        s
        for s in in_trace
        if s.kind == SpanKind.CONSUMER
        and str((s.attributes or {}).get("messaging.consumer.group.name", "")).startswith(
            "verification."
        )
    ]
    assert consumed, [s.name for s in in_trace]
    assert request in ancestry(publish, by_id)
    for consumption in consumed:
        assert ancestry(consumption, by_id)[1] == publish
        assert consumption.name == f"consume {topic}"
    # The database calls of the request are in its trace; the relay's polling starts none.
    assert any(s.kind == SpanKind.CLIENT and request in ancestry(s, by_id) for s in in_trace)
    assert all(s.parent is not None for s in finished if s.kind == SpanKind.CLIENT)
