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
from shared.projection.freshness import ProducerOutboxes
from shared.projection.writer import Projection
from shared.runtime import ServiceProcess, assemble, connect
from shared.settings import DatabaseSettings, KafkaSettings


async def build(
    kafka: KafkaSettings,
    database: DatabaseSettings,
    auth: AuthSettings,
    producers: ProducerOutboxes | None = None,
) -> tuple[ServiceProcess, ClaimsService]:
    """The service; ``producers`` answer for the services whose events it decides on (by
    default at the addresses the environment gives)."""
    producers = producers or ProducerOutboxes.from_settings()
    pool, producer = await connect(SERVICE, kafka, database)
    service = ClaimsService(
        pool, kafka, PostgresKeyStore.from_environment(pool), policy_book(), producers
    )
    projections: list[Projection] = [
        coverage_reactions(service),
        payment_reactions(service),
        ClaimsProjection(),
    ]
    app = create_app(service, auth)
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
