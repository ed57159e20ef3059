"""Verification wired to PostgreSQL, Kafka and HTTP."""

from __future__ import annotations

from contract.events.registry import CATALOGUE
from contract.policy import policy_book
from services.verification.api import create_app
from services.verification.projections import PROJECTIONS
from services.verification.service import SERVICE, VerificationService
from shared.auth import AuthSettings
from shared.runtime import ServiceProcess, assemble, connect
from shared.settings import DatabaseSettings, KafkaSettings


async def build(
    kafka: KafkaSettings, database: DatabaseSettings, auth: AuthSettings
) -> tuple[ServiceProcess, VerificationService]:
    pool, producer = await connect(SERVICE, kafka, database)
    service = VerificationService(pool, kafka, policy_book())
    app = create_app(service, auth)
    process = assemble(
        SERVICE, app, pool, producer, kafka, CATALOGUE, PROJECTIONS, closers=[service.offsets.close]
    )
    return process, service
