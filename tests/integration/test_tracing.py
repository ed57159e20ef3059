"""One trace follows a command on the real stack: a registration's HTTP request, its relay's
publish of the event, and verification's consumption of it, each span the child of the last (the
caller gets the correlation id its events carry); and a designation through enrolment's
reaction to the coverage it starts, consumed in turn by billing."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import asyncpg
import orjson
import pytest
from opentelemetry import trace
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from contract.events.registry import CATALOGUE
from services.billing import wiring as billing_wiring
from services.enrolment import wiring as enrolment_wiring
from services.verification import wiring as verification_wiring
from shared.auth import AuthSettings
from shared.logs import CORRELATION_HEADER
from shared.projection.freshness import wait_until_caught_up
from shared.projection.replay import rebuild_into
from shared.runtime import ServiceProcess
from shared.settings import DatabaseSettings, KafkaSettings
from shared.topic_reader import read_topics
from shared.tracing import configure
from tests.integration.producers import producers_in_process
from tests.integration.sandbox import isolated, running
from tests.tokens import bearer

pytestmark = pytest.mark.integration
SAPURO = "33.75.01.1004"
BARAT = "33.75.01"
WORKER = {
    "nik": "3375014507800001",
    "full_name": "Siti Aminah",
    "birth_date": "1980-07-05",
    "sex": "F",
    "occupation_code": "buruh_batik",
    "kelurahan_code": SAPURO,
    "address": "Sapuro",
}


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


async def caught_up(process: ServiceProcess, kafka: KafkaSettings) -> None:
    """Every consumer of the service has applied what its topics held."""
    for runner in process.runners:
        projection = runner.writer.projection
        await wait_until_caught_up(
            process.pool, process.name, projection.name, kafka, projection.sources, max_wait=60
        )


def consumed_by(spans: list[ReadableSpan], topic: str, consumer: str) -> list[ReadableSpan]:
    return [
        s
        for s in spans
        if s.kind == SpanKind.CONSUMER
        and s.name == f"consume {topic}"
        and str((s.attributes or {}).get("messaging.consumer.group.name", "")).startswith(consumer)
    ]


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
            json=WORKER,
            headers={**bearer("kelurahan_officer", SAPURO), CORRELATION_HEADER: str(given)},
        )
        assert response.status_code == 201, response.text
        await caught_up(verification, kafka)

    # The caller's correlation id is returned and carried by the event.
    assert response.headers[CORRELATION_HEADER] == str(given)
    topic = kafka.events_topic("enrolment")
    # The run's earlier tests share the enrolment schema: what their relays left in its outbox
    # may reach this topic too; this registration's event is the one its worker names.
    worker = response.json()["worker_id"]
    [event] = [
        envelope
        async for batch in read_topics(kafka, [topic])
        for r in batch
        if (envelope := orjson.loads(r.value))["worker_id"] == worker
    ]
    assert event["correlation_id"] == str(given)

    finished = spans.get_finished_spans()
    by_id = {s.context.span_id: s for s in finished}
    [request] = [s for s in finished if s.kind == SpanKind.SERVER and s.name == "POST /workers"]
    in_trace = [s for s in finished if s.context.trace_id == request.context.trace_id]
    [publish] = [
        s for s in in_trace if s.kind == SpanKind.PRODUCER and s.name == f"publish {topic}"
    ]
    consumed = consumed_by(in_trace, topic, "verification.")
    assert consumed, [s.name for s in in_trace]
    assert request in ancestry(publish, by_id)
    for consumption in consumed:
        assert ancestry(consumption, by_id)[1] == publish
    # The database calls of the request are in its trace; the relay's polling starts none.
    assert any(s.kind == SpanKind.CLIENT and request in ancestry(s, by_id) for s in in_trace)
    assert all(s.parent is not None for s in finished if s.kind == SpanKind.CLIENT)

    # A rebuild from the topics adds nothing to the traces of the events it replays.
    spans.clear()
    [cases] = [
        r.writer.projection for r in verification.runners if r.consumer_name.endswith("cases")
    ]
    pool = await asyncpg.create_pool(database_settings.database_url, min_size=1, max_size=2)
    scratch = f"trace_replay_{uuid.uuid4().hex[:8]}"
    try:
        rebuilt = await rebuild_into(pool, scratch, cases, CATALOGUE, kafka)
        await pool.execute(f"DROP SCHEMA {scratch} CASCADE")
    finally:
        await pool.close()
    assert rebuilt.applied == 1
    assert [s for s in spans.get_finished_spans() if s.kind == SpanKind.CONSUMER] == []


async def test_a_designations_trace_reaches_the_coverage_its_reaction_starts(
    spans: InMemorySpanExporter, kafka_settings: KafkaSettings, database_settings: DatabaseSettings
) -> None:
    kafka = await isolated(kafka_settings, database_settings, "trace")
    auth = AuthSettings()
    enrolment, _ = await enrolment_wiring.build(kafka, database_settings, auth)
    verification, _ = await verification_wiring.build(
        kafka, database_settings, auth, await producers_in_process(database_settings)
    )
    billing, _ = await billing_wiring.build(
        kafka, database_settings, auth, await producers_in_process(database_settings)
    )
    city = bearer("city_admin")
    async with (
        running(enrolment) as people,
        running(verification) as cases,
        running(billing) as budgets,
    ):
        budget = {"fiscal_year": 2024, "source": "APBD", "cohort": "regular", "amount": 10**9}
        keyed = city | {"Idempotency-Key": str(uuid.uuid4())}
        assert (await budgets.post("/budgets", json=budget, headers=keyed)).status_code == 201
        registered = await people.post(
            "/workers", json=WORKER, headers=bearer("kelurahan_officer", SAPURO)
        )
        worker = registered.json()["worker_id"]
        await caught_up(verification, kafka)
        for officer in (bearer("kelurahan_officer", SAPURO), bearer("kecamatan_officer", BARAT)):
            verified = await cases.post(f"/cases/{worker}/verify", json={}, headers=officer)
            assert verified.status_code == 200, verified.text
        await caught_up(verification, kafka)
        spans.clear()
        designated = await cases.post(
            f"/cases/{worker}/designate",
            json={
                "cohort": "regular",
                "cover_months": 12,
                "coverage_start": "2024-12-01",
                "fiscal_year": 2024,
                "decree_ref": "SK 400/77/2024",
            },
            headers=city,
        )
        assert designated.status_code == 200, designated.text
        await caught_up(enrolment, kafka)  # the reaction, then its own event in enrolment
        await caught_up(billing, kafka)

    finished = spans.get_finished_spans()
    by_id = {s.context.span_id: s for s in finished}
    [request] = [s for s in finished if s.kind == SpanKind.SERVER and "designate" in s.name]
    in_trace = [s for s in finished if s.context.trace_id == request.context.trace_id]
    decisions, coverage = kafka.events_topic("verification"), kafka.events_topic("enrolment")
    [reaction] = consumed_by(in_trace, decisions, "enrolment.")
    assert request in ancestry(reaction, by_id)
    [started] = [s for s in in_trace if s.name == f"publish {coverage}"]
    assert (started.attributes or {})["berlian.event_type"] == "CoverageStarted"
    assert reaction in ancestry(started, by_id)
    [billed] = consumed_by(in_trace, coverage, "billing.")
    assert ancestry(billed, by_id)[1] == started
