"""Writing events as their owning service would (its store, its outbox, its topic), for tests
of the services that consume them."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import asyncpg
from aiokafka import AIOKafkaProducer
from pydantic import BaseModel

from contract.events.billing import PremiumPaid
from contract.events.enrolment import CoverageEnded, CoverageStarted
from contract.events.types import Premium
from shared.db import service_dsn
from shared.eventstore import EventStore, NewEvent
from shared.eventstore.store import CommandContext
from shared.kafka_clients import producer_options
from shared.relay import OutboxRelay
from shared.settings import DatabaseSettings, KafkaSettings

PREMIUM = Premium(total=16_800, jkk=10_000, jkm=6_800)


async def publish_as(
    service: str,
    kafka: KafkaSettings,
    database: DatabaseSettings,
    stream: str,
    events: list[tuple[str, BaseModel, uuid.UUID | None]],
    publish: bool = True,
) -> None:
    """Append ``events`` to ``service``'s store and, if ``publish``, relay its outbox to the
    topic (without: committed by the producer but not yet on its topic)."""
    dsn = service_dsn(database.database_url, service, database.service_role_password)
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    producer = AIOKafkaProducer(**producer_options(kafka))
    await producer.start()
    try:
        new = [
            NewEvent(
                kind,
                data.model_dump(mode="json"),
                datetime(2024, 11, 1, tzinfo=UTC),
                worker_id=worker,
            )
            for kind, data, worker in events
        ]
        context = CommandContext("system", "system", uuid.uuid4())
        if new:
            await EventStore(pool, service, service).append(stream, None, new, context)
        if publish:
            await OutboxRelay(
                pool, service, kafka.events_topic(service), producer
            ).publish_pending()
    finally:
        await producer.stop()
        await pool.close()


async def relay_outbox(service: str, kafka: KafkaSettings, database: DatabaseSettings) -> None:
    """Publish what ``service`` has committed and not yet published."""
    await publish_as(service, kafka, database, "", [])


async def start_coverage(
    kafka: KafkaSettings,
    database: DatabaseSettings,
    worker: uuid.UUID,
    cohort: str,
    start: date,
    end: date,
    publish: bool = True,
) -> uuid.UUID:
    """Record (and publish, unless not ``publish``) a coverage as enrolment would; its id."""
    data = CoverageStarted(
        worker_id=worker,
        coverage_id=uuid.uuid4(),
        membership_no="00000000018",
        cohort=cohort,  # type: ignore[arg-type]
        fiscal_year=start.year,
        programmes=["JKK", "JKM"],
        start_date=start,
        end_date=end,
        monthly_premium=PREMIUM,
        insured_income=1_000_000,
        decree_ref="SK 1",
    )
    await publish_as(
        "enrolment",
        kafka,
        database,
        f"worker-{worker}",
        [("CoverageStarted", data, worker)],
        publish,
    )
    return data.coverage_id


async def end_coverage(
    kafka: KafkaSettings,
    database: DatabaseSettings,
    worker: uuid.UUID,
    coverage_id: uuid.UUID,
    end: date,
    reason: str,
) -> None:
    data = CoverageEnded(
        worker_id=worker,
        coverage_id=coverage_id,
        end_date=end,
        reason=reason,  # type: ignore[arg-type]
    )
    await publish_as(
        "enrolment", kafka, database, f"worker-{worker}", [("CoverageEnded", data, worker)]
    )


async def pay_months(
    kafka: KafkaSettings,
    database: DatabaseSettings,
    worker: uuid.UUID,
    periods: list[str],
    publish: bool = True,
) -> None:
    invoice = uuid.uuid4()
    events: list[tuple[str, BaseModel, uuid.UUID | None]] = [
        (
            "PremiumPaid",
            PremiumPaid(
                worker_id=worker,
                period=period,
                amount=PREMIUM,
                invoice_id=invoice,
                payment_ref=f"SP2D {invoice.hex[:6]}",
                paid_on=date(2025, 1, 5),
                payer="Pemerintah Kota Pekalongan",
            ),
            worker,
        )
        for period in periods
    ]
    await publish_as("billing", kafka, database, f"premiums-{worker}", events, publish)
