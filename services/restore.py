"""Restore a service's database from the topics: its event store from its own topic (checked
against the hash chains first), then its write side from the restored events, in one
transaction. Its projections rebuild themselves from the topics when it starts."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from services.billing.restore import rebuild_write_model as rebuild_billing
from services.claims.restore import rebuild_write_model as rebuild_claims
from services.enrolment.restore import rebuild_write_model as rebuild_enrolment
from services.verification.restore import rebuild_write_model as rebuild_verification
from services.wiring import BUILDERS
from shared.audit.verify import verify_topics
from shared.auth import AuthSettings
from shared.db import DbConnection
from shared.eventstore.restore import Restored, restore_store
from shared.settings import DatabaseSettings, KafkaSettings

WRITE_MODEL_REBUILDERS: dict[str, Callable[[Any, DbConnection], Awaitable[int]]] = {
    "enrolment": rebuild_enrolment,
    "verification": rebuild_verification,
    "billing": rebuild_billing,
    "claims": rebuild_claims,
}


class TopicNotIntactError(Exception):
    pass


@dataclass(frozen=True)
class ServiceRestored:
    service: str
    store: Restored
    write_model_rows: int


async def restore_service(
    service: str,
    kafka: KafkaSettings,
    database: DatabaseSettings,
    progress: Callable[[int], None] = lambda _: None,
) -> ServiceRestored:
    topic = kafka.events_topic(service)
    report = await verify_topics(kafka, [topic])
    if not report.ok:
        raise TopicNotIntactError(
            f"{topic} fails verification ({len(report.findings)} findings, first: "
            f"{report.findings[0]}); run `berlian audit verify` and restore from an intact copy"
        )
    process, domain_service = await BUILDERS[service](kafka, database, AuthSettings())
    try:
        async with process.pool.acquire() as conn, conn.transaction():
            store = await restore_store(conn, service, topic, kafka, progress)
            rows = await WRITE_MODEL_REBUILDERS[service](domain_service, conn)
    finally:
        await process.close()
    return ServiceRestored(service, store, rows)
