"""Restore a service's database from the topics: its event store from its own topic (checked
against the hash chains first), then its write side by replaying the restored events through
its inline projections, in one transaction. Its projections rebuild themselves from the topics
when it starts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from services.wiring import BUILDERS
from shared.audit.verify import verify_topics
from shared.auth import AuthSettings
from shared.eventstore.inline import replay_inline
from shared.eventstore.restore import Restored, restore_store
from shared.settings import DatabaseSettings, KafkaSettings


class TopicNotIntactError(Exception):
    pass


@dataclass(frozen=True)
class ServiceRestored:
    service: str
    store: Restored
    write_side_events: int  # events replayed through the inline projections


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
            replayed = await replay_inline(
                conn, service, domain_service.handler.inline, domain_service.handler.catalogue
            )
    finally:
        await process.close()
    return ServiceRestored(service, store, replayed)
