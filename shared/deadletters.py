"""Dead letters: records a consumer could not process, kept in its schema and sent to its DLQ.

The runner writes a dead letter in the transaction that advances its position, so a record is
either applied or dead-lettered, never lost and never both. This module publishes them to the owning
service's ``<prefix><service>.dlq`` (original bytes, source topic, partition, offset, consumer,
reason), lists and shows them, and re-drives one: the original record is applied again through the
projection's own rules, once the cause is fixed (for example after a consumer upgrade).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer


@dataclass(frozen=True)
class DeadLetter:
    id: int
    consumer: str
    topic: str
    partition: int
    offset: int
    reason: str
    failed_at: datetime
    published: bool
    redriven_at: datetime | None
    key: bytes | None
    value: bytes | None
    headers: list[list[str]]


def _letter(row: asyncpg.Record) -> DeadLetter:
    return DeadLetter(
        id=row["id"],
        consumer=row["consumer"],
        topic=row["topic"],
        partition=row["partition"],
        offset=row["kafka_offset"],
        reason=row["reason"],
        failed_at=row["failed_at"],
        published=row["published"],
        redriven_at=row["redriven_at"],
        key=row["key"],
        value=row["value"],
        headers=orjson.loads(row["headers"]),
    )


async def list_dead_letters(
    pool: asyncpg.Pool, schema: str, include_redriven: bool = False
) -> list[DeadLetter]:
    condition = "" if include_redriven else "WHERE redriven_at IS NULL"
    rows = await pool.fetch(f"SELECT * FROM {schema}.dead_letters {condition} ORDER BY id")
    return [_letter(row) for row in rows]


async def get_dead_letter(pool: asyncpg.Pool, schema: str, letter_id: int) -> DeadLetter | None:
    row = await pool.fetchrow(f"SELECT * FROM {schema}.dead_letters WHERE id = $1", letter_id)
    return _letter(row) if row else None


def dlq_headers(letter: DeadLetter) -> list[tuple[str, bytes]]:
    meta: dict[str, Any] = {
        "dlq.source.topic": letter.topic,
        "dlq.source.partition": letter.partition,
        "dlq.source.offset": letter.offset,
        "dlq.consumer": letter.consumer,
        "dlq.reason": letter.reason,
        "dlq.failed_at": letter.failed_at.isoformat(),
    }
    original = [(k, v.encode()) for k, v in letter.headers]
    return original + [(k, str(v).encode()) for k, v in meta.items()]


async def publish_dead_letters(
    pool: asyncpg.Pool, schema: str, topic: str, producer: AIOKafkaProducer
) -> int:
    """Send unpublished dead letters to the service's DLQ ``topic``; return how many."""
    rows = await pool.fetch(
        f"SELECT * FROM {schema}.dead_letters WHERE NOT published ORDER BY id LIMIT 1000"
    )
    letters = [_letter(row) for row in rows]
    deliveries = [
        await producer.send(
            topic,
            value=letter.value,
            key=letter.key,
            headers=dlq_headers(letter),
        )
        for letter in letters
    ]
    await asyncio.gather(*deliveries)
    await pool.execute(
        f"UPDATE {schema}.dead_letters SET published = true WHERE id = ANY($1::bigint[])",
        [letter.id for letter in letters],
    )
    return len(letters)
