"""Billing wired to PostgreSQL, Kafka and HTTP."""

from __future__ import annotations

from contract.events.registry import CATALOGUE
from contract.policy import policy_book
from services.billing.api import create_app
from services.billing.projections import AllocationsProjection, PremiumsProjection
from services.billing.reactions import coverage_end_reactions
from services.billing.service import SERVICE, BillingService
from shared.auth import AuthSettings
from shared.projection.writer import Projection
from shared.runtime import ServiceProcess, assemble, connect
from shared.settings import DatabaseSettings, KafkaSettings


async def build(
    kafka: KafkaSettings, database: DatabaseSettings, auth: AuthSettings
) -> tuple[ServiceProcess, BillingService]:
    pool, producer = await connect(SERVICE, kafka, database)
    service = BillingService(pool, kafka, policy_book())
    app = create_app(service, auth)
    projections: list[Projection] = [
        AllocationsProjection(),
        coverage_end_reactions(service),
        PremiumsProjection(),
    ]
    process = assemble(
        SERVICE, app, pool, producer, kafka, CATALOGUE, projections, closers=[service.offsets.close]
    )
    return process, service
