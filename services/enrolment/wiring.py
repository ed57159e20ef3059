"""Enrolment wired to PostgreSQL, Kafka and HTTP: the one place where adapters meet."""

from __future__ import annotations

import asyncpg
from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from contract.events.registry import CATALOGUE
from contract.policy import policy_book
from contract.readmodels.coverage import CoveragesProjection
from services.enrolment.api import create_app
from services.enrolment.expiry import expiry_job
from services.enrolment.import_jobs import ImportJobs
from services.enrolment.projections import WorkersProjection
from services.enrolment.reactions import coverage_reactions
from services.enrolment.service import SERVICE, EnrolmentService
from shared.auth import AuthSettings
from shared.business_calendar import business_day
from shared.keystore import PostgresKeyStore
from shared.kms import nik_digest_key
from shared.projection.writer import Projection
from shared.runtime import ServiceProcess, assemble, connect
from shared.settings import DatabaseSettings, GuardedSettings, KafkaSettings


class EnrolmentSettings(GuardedSettings):
    model_config = SettingsConfigDict(env_prefix="ENROLMENT_", extra="ignore")

    nik_secret: SecretStr = Field(
        default=SecretStr(""),
        description="Key of the NIK digest used to find one person once (at least 32 "
        "characters, from a secret); required outside the local development mode.",
    )
    expiry_interval_seconds: float = Field(
        default=60.0, gt=0, description="How often coverages past their end are ended."
    )

    def nik_digest_key(self) -> bytes:
        return nik_digest_key(self.nik_secret, "ENROLMENT_NIK_SECRET")


def enrolment_service(
    pool: asyncpg.Pool, settings: EnrolmentSettings | None = None
) -> EnrolmentService:
    """Enrolment's service on ``pool``, with the keys and the NIK digest key the environment
    configures."""
    return EnrolmentService(
        pool,
        PostgresKeyStore.from_environment(pool),
        policy_book(),
        (settings or EnrolmentSettings()).nik_digest_key(),
    )


async def build(
    kafka: KafkaSettings, database: DatabaseSettings, auth: AuthSettings
) -> tuple[ServiceProcess, EnrolmentService]:
    pool, producer = await connect(SERVICE, kafka, database)
    settings = EnrolmentSettings()
    service = enrolment_service(pool, settings)
    expiry = expiry_job(
        service, lambda: business_day(service.clock()), settings.expiry_interval_seconds
    )
    projections: list[Projection] = [
        WorkersProjection(),
        CoveragesProjection(),
        coverage_reactions(service),
    ]
    app = create_app(service, auth)
    imports = ImportJobs(service).job()
    process = assemble(
        SERVICE, app, pool, producer, kafka, CATALOGUE, projections, [expiry, imports]
    )
    return process, service
