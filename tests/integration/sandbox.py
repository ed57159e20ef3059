"""A fresh service schema with the platform's tables, and a fresh topic."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg
from aiokafka.admin import NewTopic

from shared.eventstore.migrations import PLATFORM, migrate
from shared.settings import DatabaseSettings, KafkaSettings
from shared.topics import EVENT_TOPIC_CONFIG, ensure_topics


@dataclass(frozen=True)
class ServiceSandbox:
    """One service's world for a test: a schema of its own and topics under a prefix of its own."""

    service: str
    schema: str
    pool: asyncpg.Pool
    kafka: KafkaSettings

    @property
    def topic(self) -> str:
        return self.kafka.events_topic(self.service)


async def make_sandbox(
    database: DatabaseSettings, kafka: KafkaSettings, service: str = "billing"
) -> ServiceSandbox:
    unique = uuid.uuid4().hex[:8]
    schema = f"{service}_{unique}"
    kafka = kafka.model_copy(update={"topic_prefix": f"{kafka.topic_prefix}{unique}."})
    pool = await asyncpg.create_pool(database.database_url, min_size=1, max_size=8)
    async with pool.acquire() as conn:
        await conn.execute(f"CREATE SCHEMA {schema}")
        await migrate(conn, schema, PLATFORM)
    sandbox = ServiceSandbox(service, schema, pool, kafka)
    await ensure_topics(
        kafka,
        [
            NewTopic(
                name=t, num_partitions=3, replication_factor=1, topic_configs=EVENT_TOPIC_CONFIG
            )
            for t in (sandbox.topic, kafka.dead_letter_topic(service))
        ],
    )
    return sandbox
