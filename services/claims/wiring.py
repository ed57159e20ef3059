"""Claims wired to PostgreSQL, Kafka and HTTP."""

from __future__ import annotations

import asyncpg
from aiokafka import AIOKafkaProducer

from services.claims.api import create_app
from services.claims.projections import ClaimsProjection
from services.claims.reactions import PaymentReactions
from services.claims.service import SERVICE, ClaimsService
from shared.auth import AuthSettings
from shared.db import service_dsn
from shared.kafka_clients import producer_options
from shared.keystore import PostgresKeyStore
from shared.policy import policy_book
from shared.projection.runner import ProjectionRunner
from shared.readmodels.coverage import CoveragesProjection
from shared.relay import OutboxRelay
from shared.runtime import ServiceProcess
from shared.settings import DatabaseSettings, KafkaSettings


async def build(
    kafka: KafkaSettings, database: DatabaseSettings, auth: AuthSettings
) -> tuple[ServiceProcess, ClaimsService]:
    dsn = service_dsn(database.database_url, SERVICE, database.service_role_password)
    pool = await asyncpg.create_pool(dsn, min_size=2, max_size=10)
    producer = AIOKafkaProducer(**producer_options(kafka))
    await producer.start()
    service = ClaimsService(pool, kafka, PostgresKeyStore(pool), policy_book())
    process = ServiceProcess(
        name=SERVICE,
        app=create_app(service, auth),
        pool=pool,
        producer=producer,
        relay=OutboxRelay(pool, SERVICE, kafka.events_topic(SERVICE), producer),
        notify_channel=service.store.notify_channel,
        runners=[
            ProjectionRunner(pool, SERVICE, CoveragesProjection(), kafka),
            ProjectionRunner(pool, SERVICE, PaymentReactions(service), kafka),
            ProjectionRunner(pool, SERVICE, ClaimsProjection(), kafka),
        ],
        kafka=kafka,
    )
    process.add_health()
    return process, service
