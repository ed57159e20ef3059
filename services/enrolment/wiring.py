"""Enrolment wired to PostgreSQL, Kafka and HTTP: the one place where adapters meet."""

from __future__ import annotations

import asyncpg
from aiokafka import AIOKafkaProducer
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.enrolment.api import create_app
from services.enrolment.expiry import expiry_job
from services.enrolment.projections import WorkersProjection
from services.enrolment.reactions import CoverageReactions
from services.enrolment.service import SERVICE, EnrolmentService
from shared.auth import AuthSettings
from shared.db import service_dsn
from shared.kafka_clients import producer_options
from shared.keystore import PostgresKeyStore
from shared.policy import policy_book
from shared.projection.runner import ProjectionRunner
from shared.relay import OutboxRelay
from shared.runtime import ServiceProcess
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
    dsn = service_dsn(database.database_url, SERVICE, database.service_role_password)
    pool = await asyncpg.create_pool(dsn, min_size=2, max_size=10)
    producer = AIOKafkaProducer(**producer_options(kafka))
    await producer.start()
    settings = EnrolmentSettings()
    service = EnrolmentService(
        pool, PostgresKeyStore(pool), policy_book(), settings.nik_secret.encode()
    )
    process = ServiceProcess(
        name=SERVICE,
        app=create_app(service, auth),
        pool=pool,
        producer=producer,
        relay=OutboxRelay(pool, SERVICE, kafka.events_topic(SERVICE), producer),
        notify_channel=service.store.notify_channel,
        runners=[
            ProjectionRunner(pool, SERVICE, WorkersProjection(), kafka),
            ProjectionRunner(pool, SERVICE, CoverageReactions(service), kafka),
        ],
        kafka=kafka,
        background=[
            expiry_job(service, lambda: service.clock().date(), settings.expiry_interval_seconds)
        ],
    )
    process.add_health()
    return process, service
