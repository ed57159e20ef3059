"""The smoke flow: publish through FastStream to the real broker, consume, write to PostgreSQL.

It proves the plumbing end to end (client settings, topic creation, a consumer that commits its
effect before acknowledging) before any service exists on top of it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass

import asyncpg
from aiokafka import ConsumerRecord
from aiokafka.admin import NewTopic
from faststream.kafka import KafkaMessage

from shared.kafka_clients import SUBSCRIBER_SAFETY, faststream_broker
from shared.settings import KafkaSettings
from shared.topics import EVENT_TOPIC_CONFIG, ensure_topics

SCHEMA = "smoke"


@dataclass(frozen=True)
class SmokeResult:
    topic: str
    sent: list[str]
    stored: int


async def run_smoke(kafka: KafkaSettings, database_url: str, count: int = 10) -> SmokeResult:
    topic = f"{kafka.topic_prefix}smoke"
    await ensure_topics(
        kafka,
        [
            NewTopic(
                name=topic,
                num_partitions=kafka.topic_partitions,
                replication_factor=kafka.topic_replication_factor,
                topic_configs=EVENT_TOPIC_CONFIG,
            )
        ],
    )
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        async with pool.acquire() as conn:
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {SCHEMA}.messages (message_id uuid PRIMARY KEY, "
                "body text NOT NULL, topic text NOT NULL, kafka_partition int NOT NULL, "
                "kafka_offset bigint NOT NULL)"
            )
        sent = [str(uuid.uuid4()) for _ in range(count)]
        pending = set(sent)
        all_stored = asyncio.Event()
        broker = faststream_broker(kafka, log_level=logging.WARNING)

        # FastStream's subscriber decorator is not typed for mypy.
        @broker.subscriber(  # type: ignore[untyped-decorator]
            topic, group_id=f"{topic}.writer", **SUBSCRIBER_SAFETY
        )
        async def store(body: dict[str, str], message: KafkaMessage) -> None:
            record = message.raw_message
            assert isinstance(record, ConsumerRecord)  # one record per call: not a batch subscriber
            async with pool.acquire() as conn:
                await conn.execute(
                    f"INSERT INTO {SCHEMA}.messages VALUES ($1, $2, $3, $4, $5) "
                    "ON CONFLICT (message_id) DO NOTHING",
                    uuid.UUID(body["message_id"]),
                    body["text"],
                    record.topic,
                    record.partition,
                    record.offset,
                )
            await message.ack()
            pending.discard(body["message_id"])
            if not pending:
                all_stored.set()

        async with broker:
            await broker.start()
            for message_id in sent:
                await broker.publish(
                    {"message_id": message_id, "text": "Berlian smoke test"},
                    topic,
                    key=message_id.encode(),
                )
            await asyncio.wait_for(all_stored.wait(), timeout=60)
        async with pool.acquire() as conn:
            stored = await conn.fetchval(
                f"SELECT count(*) FROM {SCHEMA}.messages WHERE message_id = ANY($1::uuid[])",
                [uuid.UUID(m) for m in sent],
            )
        return SmokeResult(topic, sent, int(stored))
    finally:
        await pool.close()
