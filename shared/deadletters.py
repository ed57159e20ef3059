"""Dead letters: records a consumer could not process, kept in its schema and sent to its DLQ.

The runner writes a dead letter in the transaction that advances its position, so a record is
either applied or dead-lettered, never lost and never both. Dead letters are sequenced by stream:
when an event of a stream fails, the stream is parked for that consumer and its later events are
parked behind it, in order, while the other streams of the partition go on. Re-driving applies a
parked sequence in order (``ProjectionWriter.redrive``); an operator may also skip a letter,
recorded with who and why (``ProjectionWriter.skip``).

This module reads them (list, show, a stream's waiting sequence, the parked figures) and
publishes them to the owning service's ``<prefix><service>.dlq`` (original bytes, source topic,
partition, offset, consumer, stream, reason).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer

from shared.db import DbConnection

Resolution = Literal["applied", "skipped", "moved_on", "not_read", "replaced"]

MAX_OPERATOR_CHARS = 100
MAX_NOTE_CHARS = 1000


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
    key: bytes | None
    value: bytes | None
    headers: list[list[str]]
    stream_id: str | None  # None: nothing about the record could be trusted; it holds none back
    stream_version: int | None
    parked: bool  # held behind an earlier letter of its stream, not failed itself
    resolution: Resolution | None
    resolved_at: datetime | None
    resolved_by: str | None
    resolution_note: str | None


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
        key=row["key"],
        value=row["value"],
        headers=orjson.loads(row["headers"]),
        stream_id=row["stream_id"],
        stream_version=row["stream_version"],
        parked=row["parked"],
        resolution=row["resolution"],
        resolved_at=row["resolved_at"],
        resolved_by=row["resolved_by"],
        resolution_note=row["resolution_note"],
    )


async def list_dead_letters(
    pool: asyncpg.Pool, schema: str, include_resolved: bool = False
) -> list[DeadLetter]:
    condition = "" if include_resolved else "WHERE resolved_at IS NULL"
    rows = await pool.fetch(f"SELECT * FROM {schema}.dead_letters {condition} ORDER BY id")
    return [_letter(row) for row in rows]


async def get_dead_letter(pool: asyncpg.Pool, schema: str, letter_id: int) -> DeadLetter | None:
    row = await pool.fetchrow(f"SELECT * FROM {schema}.dead_letters WHERE id = $1", letter_id)
    return _letter(row) if row else None


async def waiting_sequence(conn: DbConnection, schema: str, letter: DeadLetter) -> list[DeadLetter]:
    """The letters still waiting in ``letter``'s sequence, in the order they must be applied:
    its stream's, by stream version; a letter naming no stream is a sequence of its own."""
    if letter.stream_id is None:
        row = await conn.fetchrow(
            f"SELECT * FROM {schema}.dead_letters WHERE id = $1 AND resolved_at IS NULL",
            letter.id,
        )
        return [_letter(row)] if row else []
    rows = await conn.fetch(
        f"SELECT * FROM {schema}.dead_letters WHERE consumer = $1 AND stream_id = $2 "
        "AND resolved_at IS NULL ORDER BY stream_version, kafka_offset",
        letter.consumer,
        letter.stream_id,
    )
    return [_letter(row) for row in rows]


@dataclass(frozen=True)
class ParkedFigures:
    letters: int  # records waiting: failed ones and those parked behind them
    streams: int  # streams held back
    oldest_seconds: float  # age of the oldest waiting letter (0 when none)


async def parked_figures(pool: asyncpg.Pool, schema: str, consumer: str) -> ParkedFigures:
    row = await pool.fetchrow(
        f"SELECT count(*) AS letters, count(DISTINCT stream_id) AS streams, "
        "coalesce(extract(epoch FROM now() - min(failed_at)), 0) AS oldest "
        f"FROM {schema}.dead_letters WHERE consumer = $1 AND resolved_at IS NULL",
        consumer,
    )
    assert row is not None
    return ParkedFigures(int(row["letters"]), int(row["streams"]), float(row["oldest"]))


def dlq_headers(letter: DeadLetter) -> list[tuple[str, bytes]]:
    meta: dict[str, Any] = {
        "dlq.source.topic": letter.topic,
        "dlq.source.partition": letter.partition,
        "dlq.source.offset": letter.offset,
        "dlq.consumer": letter.consumer,
        "dlq.reason": letter.reason,
        "dlq.stream_id": letter.stream_id or "",
        "dlq.stream_version": letter.stream_version or "",
        "dlq.parked": str(letter.parked).lower(),
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
