"""Billing wired to PostgreSQL, Kafka and HTTP."""

from __future__ import annotations

from contract.events.registry import CATALOGUE
from contract.policy import policy_book
from services.billing.api import create_app
from services.billing.projections import AllocationsProjection, PremiumsProjection
from services.billing.reactions import coverage_end_reactions
from services.billing.service import SERVICE, BillingService
from shared.auth import AuthSettings
from shared.projection.freshness import ProducerOutboxes
from shared.projection.writer import Projection
from shared.runtime import ServiceProcess, assemble, connect
from shared.settings import DatabaseSettings, KafkaSettings


async def build(
    kafka: KafkaSettings,
    database: DatabaseSettings,
    auth: AuthSettings,
    producers: ProducerOutboxes | None = None,
) -> tuple[ServiceProcess, BillingService]:
    """The service; ``producers`` answer for the services whose events it decides on (by
    default at the addresses the environment gives)."""
    producers = producers or ProducerOutboxes.from_settings()
    pool, producer = await connect(SERVICE, kafka, database)
    service = BillingService(pool, kafka, policy_book(), producers)
    app = create_app(service, auth)
    projections: list[Projection] = [
        AllocationsProjection(),
        coverage_end_reactions(service),
        PremiumsProjection(),
    ]
    process = assemble(
        SERVICE,
        app,
        pool,
        producer,
        kafka,
        CATALOGUE,
        projections,
        closers=[service.offsets.close, producers.close],
    )
    return process, service
