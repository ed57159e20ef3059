"""Claims wired to PostgreSQL, Kafka and HTTP."""

from __future__ import annotations

from contract.events.registry import CATALOGUE
from contract.policy import policy_book
from services.claims.api import create_app
from services.claims.projections import ClaimsProjection
from services.claims.reactions import coverage_reactions, payment_reactions
from services.claims.service import SERVICE, ClaimsService
from shared.auth import AuthSettings
from shared.keystore import PostgresKeyStore
from shared.projection.writer import Projection
from shared.runtime import ServiceProcess, assemble, connect
from shared.settings import DatabaseSettings, KafkaSettings


async def build(
    kafka: KafkaSettings, database: DatabaseSettings, auth: AuthSettings
) -> tuple[ServiceProcess, ClaimsService]:
    pool, producer = await connect(SERVICE, kafka, database)
    service = ClaimsService(pool, kafka, PostgresKeyStore.from_environment(pool), policy_book())
    projections: list[Projection] = [
        coverage_reactions(service),
        payment_reactions(service),
        ClaimsProjection(),
    ]
    app = create_app(service, auth)
    process = assemble(
        SERVICE, app, pool, producer, kafka, CATALOGUE, projections, closers=[service.offsets.close]
    )
    return process, service
