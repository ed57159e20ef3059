"""Enrolment wired to PostgreSQL, Kafka and HTTP: the one place where adapters meet."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.enrolment.api import create_app
from services.enrolment.expiry import expiry_job
from services.enrolment.projections import WorkersProjection
from services.enrolment.reactions import coverage_reactions
from services.enrolment.service import SERVICE, EnrolmentService
from shared.auth import AuthSettings
from shared.keystore import PostgresKeyStore
from shared.policy import policy_book
from shared.policy.calendar import business_day
from shared.projection.writer import Projection
from shared.readmodels.coverage import CoveragesProjection
from shared.runtime import ServiceProcess, assemble, connect
from shared.settings import DatabaseSettings, KafkaSettings


class EnrolmentSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ENROLMENT_", extra="ignore")

    nik_secret: str = Field(
        default="local-development-nik-digest-key",
        min_length=16,
        description="Key of the NIK digest used to find one person once; keep it secret.",
    )
    expiry_interval_seconds: float = Field(
        default=60.0, gt=0, description="How often coverages past their end are ended."
    )


async def build(
    kafka: KafkaSettings, database: DatabaseSettings, auth: AuthSettings
) -> tuple[ServiceProcess, EnrolmentService]:
    pool, producer = await connect(SERVICE, kafka, database)
    settings = EnrolmentSettings()
    service = EnrolmentService(
        pool, PostgresKeyStore(pool), policy_book(), settings.nik_secret.encode()
    )
    expiry = expiry_job(
        service, lambda: business_day(service.clock()), settings.expiry_interval_seconds
    )
    projections: list[Projection] = [
        WorkersProjection(),
        CoveragesProjection(),
        coverage_reactions(service),
    ]
    app = create_app(service, auth)
    process = assemble(SERVICE, app, pool, producer, kafka, projections, [expiry])
    return process, service
