"""Rebuilding a projection from the topics alone.

``rebuild_into`` builds a projection into a scratch schema with the same writer the live runner
uses, optionally restricted to a history: *as known at* a transaction time (only events recorded
up to then) or *as true on* a business date (only events that had occurred by then).

``rebuild_and_switch`` rebuilds next to the live tables while they keep serving, catches up,
and copies the new rows in within one short transaction that locks the live positions, so the
live runner pauses for the swap and then continues from the rebuilt
positions: no event is lost or applied twice across the switch.

A rebuild dead-letters and parks exactly as the live runner does (it writes through the same
writer). On a switch, the rebuild's waiting letters replace the live ones: the live letters
still waiting are resolved as ``replaced`` (the rebuild read their records again) and the
rebuild's are moved in under the live consumer's name, so a stream parked in the rebuild is
parked live, and re-driving works on them as on any letter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime

import asyncpg
from aiokafka import TopicPartition

from shared.db import DbConnection
from shared.deadletters import parked_figures
from shared.eventstore.migrations import PLATFORM, migrate
from shared.policy.calendar import business_day
from shared.projection.decode import ConsumedEvent
from shared.projection.writer import Projection, ProjectionWriter
from shared.settings import KafkaSettings
from shared.telemetry import REPLAY_RECORDS
from shared.topic_reader import read_topics


@dataclass(frozen=True)
class History:
    """Which events a rebuild takes: all, as known at ``known_at``, as true on ``true_on``."""

    known_at: datetime | None = None
    true_on: date | None = None

    def includes(self, event: ConsumedEvent) -> bool:
        if self.known_at is not None and event.envelope.recorded_at > self.known_at:
            return False
        return self.true_on is None or business_day(event.envelope.occurred_at) <= self.true_on


@dataclass(frozen=True)
class RebuildResult:
    schema: str
    records: int
    applied: int
    dead_lettered: int
    parked_streams: int  # streams held back behind a dead letter when it ended


async def rebuild_into(
    pool: asyncpg.Pool,
    target_schema: str,
    projection: Projection,
    kafka: KafkaSettings,
    history: History | None = None,
    progress: Callable[[int], None] = lambda _: None,
) -> RebuildResult:
    """Build ``projection`` from the topics into ``target_schema`` (created afresh)."""
    async with pool.acquire() as conn:
        await empty_schema(conn, target_schema)
        await migrate(conn, target_schema, [*PLATFORM, *projection.migrations])
    writer = _writer(pool, target_schema, projection, kafka, history)
    records = await _catch_up(writer, kafka, projection, progress)
    parked = await parked_figures(pool, target_schema, writer.consumer_name)
    return RebuildResult(
        target_schema, records, writer.applied, writer.dead_lettered, parked.streams
    )


async def rebuild_and_switch(
    pool: asyncpg.Pool,
    schema: str,
    projection: Projection,
    kafka: KafkaSettings,
    progress: Callable[[int], None] = lambda _: None,
) -> RebuildResult:
    """Rebuild beside the live tables, then swap them in without downtime."""
    shadow = scratch_schema(schema)
    result = await rebuild_into(pool, shadow, projection, kafka, progress=progress)
    writer = _writer(pool, shadow, projection, kafka, None)
    async with pool.acquire() as conn, conn.transaction():
        # Every batch of a live runner starts by writing its position row: locking the table
        # against writers pauses the runners between two batches, for all partitions at once.
        await conn.execute(f"LOCK TABLE {schema}.projection_positions IN SHARE ROW EXCLUSIVE MODE")
        tail = await _catch_up(writer, kafka, projection, progress)
        # Rows are copied, not tables swapped: the live tables belong to the migration role,
        # and the service's login may rewrite their rows but neither drop nor replace them.
        for table in projection.tables:
            await conn.execute(f"DELETE FROM {schema}.{table}")
            await conn.execute(f"INSERT INTO {schema}.{table} SELECT * FROM {shadow}.{table}")
        # Positions are updated in place: the live runner, waiting on these rows, then reads
        # the rebuilt positions and skips what the rebuild already applied.
        await conn.execute(
            f"INSERT INTO {schema}.projection_positions "
            f"SELECT * FROM {shadow}.projection_positions WHERE projection = $1 "
            "ON CONFLICT (projection, topic, partition) "
            "DO UPDATE SET next_offset = EXCLUDED.next_offset",
            projection.name,
        )
        await conn.execute(
            f"DELETE FROM {schema}.projection_streams WHERE projection = $1", projection.name
        )
        await conn.execute(
            f"INSERT INTO {schema}.projection_streams "
            f"SELECT * FROM {shadow}.projection_streams WHERE projection = $1",
            projection.name,
        )
        await _move_waiting_letters(conn, shadow, schema, writer.consumer_name, projection.name)
        await empty_schema(conn, shadow)
    parked = await parked_figures(pool, schema, f"{schema}.{projection.name}")
    return RebuildResult(
        schema,
        result.records + tail,
        writer.applied + result.applied,
        result.dead_lettered + writer.dead_lettered,
        parked.streams,
    )


async def _move_waiting_letters(
    conn: DbConnection, shadow: str, schema: str, shadow_consumer: str, projection: str
) -> None:
    live_consumer = f"{schema}.{projection}"
    await conn.execute(
        f"UPDATE {schema}.dead_letters SET resolution = 'replaced', resolved_at = now(), "
        "resolution_note = 'the rebuild read this record again' "
        "WHERE consumer = $1 AND resolved_at IS NULL",
        live_consumer,
    )
    # A letter the live side had already published to the DLQ is not published again.
    await conn.execute(
        f"INSERT INTO {schema}.dead_letters (consumer, topic, partition, kafka_offset, key, "
        "value, headers, reason, failed_at, published, stream_id, stream_version, parked) "
        "SELECT $2, s.topic, s.partition, s.kafka_offset, s.key, s.value, s.headers, s.reason, "
        "s.failed_at, EXISTS (SELECT 1 FROM "
        f"{schema}.dead_letters l WHERE l.consumer = $2 AND l.topic = s.topic "
        "AND l.partition = s.partition AND l.kafka_offset = s.kafka_offset AND l.published), "
        "s.stream_id, s.stream_version, s.parked "
        f"FROM {shadow}.dead_letters s WHERE s.consumer = $1 AND s.resolved_at IS NULL "
        "ORDER BY s.id",
        shadow_consumer,
        live_consumer,
    )


def scratch_schema(schema: str) -> str:
    """The schema, owned by the service's role, where it rebuilds beside its live tables."""
    return f"{schema}_scratch"


async def empty_schema(conn: DbConnection, schema: str) -> None:
    """Create ``schema`` if missing, else drop every table in it (a service role owns its
    scratch schema but may not create schemas)."""
    exists = await conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", schema)
    if not exists:
        await conn.execute(f"CREATE SCHEMA {schema}")
        return
    tables = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = $1", schema)
    for row in tables:
        await conn.execute(f'DROP TABLE IF EXISTS {schema}."{row["tablename"]}" CASCADE')


def _writer(
    pool: asyncpg.Pool,
    schema: str,
    projection: Projection,
    kafka: KafkaSettings,
    history: History | None,
) -> ProjectionWriter:
    owners = {kafka.events_topic(source): source for source in projection.sources}
    return ProjectionWriter(
        pool,
        schema,
        projection,
        owners,
        consumer_name=f"{schema}.{projection.name}",
        include=history.includes if history else None,
        traced=False,
    )


async def _catch_up(
    writer: ProjectionWriter,
    kafka: KafkaSettings,
    projection: Projection,
    progress: Callable[[int], None],
) -> int:
    """Apply every record up to the topics' current ends that the target does not have yet."""
    stored = await writer.stored_positions()
    topics = [kafka.events_topic(source) for source in projection.sources]
    records = 0
    async for batch in read_topics(kafka, topics, start_at=stored):
        tp = TopicPartition(batch[0].topic, batch[0].partition)
        await writer.write(tp, batch, strict=False)
        records += len(batch)
        REPLAY_RECORDS.labels(projection.name).inc(len(batch))
        progress(len(batch))
    return records


async def table_digest(pool: asyncpg.Pool, schema: str, table: str) -> str:
    """An order-independent fingerprint of a table's rows, to compare two builds."""
    return str(
        await pool.fetchval(
            f"SELECT md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) "
            f"FROM {schema}.{table} t"
        )
    )


async def rows_differing(
    pool: asyncpg.Pool, table: str, schema_a: str, schema_b: str, columns: str = "*"
) -> int:
    """How many rows of ``table`` are in one schema's copy and not the other's (0: identical),
    comparing ``columns``."""
    a = f"SELECT {columns} FROM {schema_a}.{table}"
    b = f"SELECT {columns} FROM {schema_b}.{table}"
    return int(
        await pool.fetchval(
            f"SELECT count(*) FROM (({a} EXCEPT ALL {b}) UNION ALL ({b} EXCEPT ALL {a})) differing"
        )
    )
