"""Rebuilding a projection from the topics alone.

``rebuild_into`` builds a projection into a scratch schema with the same writer the live runner
uses, optionally restricted to a history: *as known at* a transaction time (only events recorded
up to then) or *as true on* a business date (only events that had occurred by then);
``rebuild_all`` builds several at once, reading each topic once for all that read it and
decoding each record once.

A rebuild into empty tables is set-based: a partition's records go in batches of thousands,
each one transaction of the writer, whose changes are collapsed to one write per row and one
statement per shape (:func:`shared.projection.changes.collapsed`); the tables' secondary
indexes are dropped after the migrations made them and made again once the rows are in. With
``Processes`` the topics' partitions are split into groups of about equal records, one process
each: a partition number goes whole to one process, over every topic, so a worker's events
(keyed by worker) meet in one process; the rows events of many partitions change (counters) are
written in key order, and a deadlock, were one to happen, is retried as any transient failure.

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

import asyncio
import multiprocessing
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from datetime import date, datetime

import asyncpg
from aiokafka import TopicPartition

from shared.business_calendar import business_day
from shared.catalogue import EventCatalogue
from shared.db import CONNECTION_LOST, DbConnection
from shared.deadletters import parked_figures
from shared.eventstore.migrations import PLATFORM, migrate
from shared.projection.decode import ConsumedEvent
from shared.projection.writer import Decoded, Projection, ProjectionWriter, Record
from shared.retries import retry_forever
from shared.settings import KafkaSettings
from shared.telemetry import REPLAY_RECORDS
from shared.topic_reader import end_offsets, read_topics


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


@dataclass(frozen=True)
class Rebuild:
    """A projection to rebuild, and the schema to build it into."""

    projection: Projection
    schema: str


@dataclass(frozen=True)
class Processes:
    """Rebuild in ``count`` processes, each over a group of the topics' partitions, each with
    connections of its own to ``database_url``."""

    count: int
    database_url: str


@dataclass(frozen=True)
class _Loaded:
    records: int = 0
    applied: int = 0
    dead_lettered: int = 0

    def __add__(self, other: _Loaded) -> _Loaded:
        return _Loaded(
            self.records + other.records,
            self.applied + other.applied,
            self.dead_lettered + other.dead_lettered,
        )


# A partition's records are written in batches of up to this many, each one transaction; at
# most MAX_HELD records wait, over all partitions, for their batch to fill.
REBUILD_BATCH = 5000
MAX_HELD = 40_000


async def rebuild_into(
    pool: asyncpg.Pool,
    target_schema: str,
    projection: Projection,
    catalogue: EventCatalogue,
    kafka: KafkaSettings,
    history: History | None = None,
    progress: Callable[[int], None] = lambda _: None,
    processes: Processes | None = None,
) -> RebuildResult:
    """Build ``projection`` from the topics into ``target_schema`` (created afresh)."""
    rebuild = Rebuild(projection, target_schema)
    [result] = await rebuild_all(pool, [rebuild], catalogue, kafka, history, progress, processes)
    return result


async def rebuild_all(
    pool: asyncpg.Pool,
    rebuilds: Sequence[Rebuild],
    catalogue: EventCatalogue,
    kafka: KafkaSettings,
    history: History | None = None,
    progress: Callable[[int], None] = lambda _: None,
    processes: Processes | None = None,
) -> list[RebuildResult]:
    """Build each projection into its schema (created afresh), reading every topic once for
    all the projections that read it. The tables' secondary indexes are built once, after the
    rows are in; ``processes`` spreads the partitions over processes of their own."""
    schemas = [rebuild.schema for rebuild in rebuilds]
    if len(set(schemas)) != len(schemas):
        raise ValueError(f"each projection needs a schema of its own, not {schemas}")
    set_aside: list[str] = []
    async with pool.acquire() as conn:
        for rebuild in rebuilds:
            await empty_schema(conn, rebuild.schema)
            await migrate(conn, rebuild.schema, [*PLATFORM, *rebuild.projection.migrations])
            set_aside += await _drop_secondary_indexes(
                conn, rebuild.schema, rebuild.projection.tables
            )
    if processes is None or processes.count <= 1:
        writers = [
            _writer(pool, r.schema, r.projection, catalogue, kafka, history) for r in rebuilds
        ]
        loaded = await _load(writers, kafka, progress)
    else:
        loaded = await _load_in_processes(rebuilds, catalogue, kafka, history, progress, processes)
    async with pool.acquire() as conn:
        for definition in set_aside:
            await conn.execute(definition)
        for rebuild in rebuilds:
            for table in rebuild.projection.tables:
                await conn.execute(f"ANALYZE {rebuild.schema}.{table}")
    results = []
    for rebuild, figures in zip(rebuilds, loaded, strict=True):
        consumer = _consumer_name(rebuild.schema, rebuild.projection)
        parked = await parked_figures(pool, rebuild.schema, consumer)
        results.append(
            RebuildResult(
                rebuild.schema,
                figures.records,
                figures.applied,
                figures.dead_lettered,
                parked.streams,
            )
        )
    return results


async def rebuild_and_switch(
    pool: asyncpg.Pool,
    schema: str,
    projection: Projection,
    catalogue: EventCatalogue,
    kafka: KafkaSettings,
    progress: Callable[[int], None] = lambda _: None,
    processes: Processes | None = None,
) -> RebuildResult:
    """Rebuild beside the live tables, then swap them in without downtime."""
    shadow = scratch_schema(schema)
    result = await rebuild_into(
        pool, shadow, projection, catalogue, kafka, None, progress, processes
    )
    writer = _writer(pool, shadow, projection, catalogue, kafka, None)
    async with pool.acquire() as conn, conn.transaction():
        # Every batch of a live runner starts by writing its position row: locking the table
        # against writers pauses the runners between two batches, for all partitions at once.
        await conn.execute(f"LOCK TABLE {schema}.projection_positions IN SHARE ROW EXCLUSIVE MODE")
        [tail] = await _load([writer], kafka, progress)
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
        result.records + tail.records,
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


async def _drop_secondary_indexes(
    conn: DbConnection, schema: str, tables: Sequence[str]
) -> list[str]:
    """Drop the tables' indexes that no upsert needs (not unique), returning the statements
    that create them again as the migrations made them."""
    rows = await conn.fetch(
        "SELECT index.relname AS name, pg_get_indexdef(i.indexrelid) AS definition "
        "FROM pg_index i JOIN pg_class index ON index.oid = i.indexrelid "
        "JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace "
        "WHERE n.nspname = $1 AND t.relname = ANY($2::text[]) AND NOT i.indisunique",
        schema,
        list(tables),
    )
    for row in rows:
        await conn.execute(f'DROP INDEX {schema}."{row["name"]}"')
    return [row["definition"] for row in rows]


def _consumer_name(schema: str, projection: Projection) -> str:
    return f"{schema}.{projection.name}"


def _writer(
    pool: asyncpg.Pool,
    schema: str,
    projection: Projection,
    catalogue: EventCatalogue,
    kafka: KafkaSettings,
    history: History | None,
) -> ProjectionWriter:
    owners = {kafka.events_topic(source): source for source in projection.sources}
    return ProjectionWriter(
        pool,
        schema,
        projection,
        catalogue,
        owners,
        consumer_name=_consumer_name(schema, projection),
        include=history.includes if history else None,
        traced=False,
    )


async def _load(
    writers: Sequence[ProjectionWriter],
    kafka: KafkaSettings,
    progress: Callable[[int], None],
    only: Collection[TopicPartition] | None = None,
) -> list[_Loaded]:
    """Apply every record up to the topics' current ends that a writer does not have yet,
    reading each topic once for all the writers that read it (of the partitions ``only``)."""
    readers: dict[str, list[int]] = {}
    for index, writer in enumerate(writers):
        for source in writer.projection.sources:
            readers.setdefault(kafka.events_topic(source), []).append(index)
    stored = [await writer.stored_positions() for writer in writers]
    # From the earliest position any writer needs (each drops what it already has); from the
    # beginning where one of them has none.
    start_at: dict[TopicPartition, int] = {}
    for tp in {tp for positions in stored for tp in positions}:
        earliest = min(stored[index].get(tp, 0) for index in readers[tp.topic])
        if earliest:
            start_at[tp] = earliest
    loaded = [_Loaded() for _ in writers]
    held: dict[TopicPartition, list[Record]] = {}

    async def write(tp: TopicPartition) -> None:
        records = held.pop(tp)
        decoded: Decoded = {}  # each record decoded once, for every writer that reads it
        async with asyncio.TaskGroup() as group:
            for index in readers[tp.topic]:
                group.create_task(writers[index].write(tp, records, False, decoded))
        for index in readers[tp.topic]:
            loaded[index] += _Loaded(records=len(records))
            REPLAY_RECORDS.labels(writers[index].projection.name).inc(len(records))
        progress(len(records))

    async for batch in read_topics(kafka, sorted(readers), start_at=start_at, only=only):
        tp = TopicPartition(batch[0].topic, batch[0].partition)
        held.setdefault(tp, []).extend(batch)
        if len(held[tp]) >= REBUILD_BATCH:
            await write(tp)
        while sum(len(records) for records in held.values()) > MAX_HELD:
            await write(max(held, key=lambda waiting: len(held[waiting])))
    for tp in list(held):
        await write(tp)
    return [
        replace(figures, applied=writer.applied, dead_lettered=writer.dead_lettered)
        for figures, writer in zip(loaded, writers, strict=True)
    ]


async def _load_in_processes(
    rebuilds: Sequence[Rebuild],
    catalogue: EventCatalogue,
    kafka: KafkaSettings,
    history: History | None,
    progress: Callable[[int], None],
    processes: Processes,
) -> list[_Loaded]:
    topics = sorted({kafka.events_topic(s) for r in rebuilds for s in r.projection.sources})
    sizes = await end_offsets(kafka, topics)
    groups = partition_groups(sizes, processes.count)
    loaded = [_Loaded() for _ in rebuilds]
    loop = asyncio.get_running_loop()
    # Spawned, not forked: a fork would copy this process's event loop and connections.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(len(groups), mp_context=context) as executor:

        async def run(group: list[TopicPartition]) -> list[_Loaded]:
            figures = await loop.run_in_executor(
                executor,
                _load_group,
                rebuilds,
                catalogue,
                kafka,
                history,
                group,
                processes.database_url,
            )
            progress(sum(sizes[tp] for tp in group))
            return figures

        for figures in await asyncio.gather(*(run(group) for group in groups)):
            loaded = [total + part for total, part in zip(loaded, figures, strict=True)]
    return loaded


def partition_groups(sizes: Mapping[TopicPartition, int], count: int) -> list[list[TopicPartition]]:
    """The partitions holding records, in up to ``count`` groups of about equal records.

    A partition number goes whole to one group, over every topic: records are keyed by worker
    and the topics have as many partitions, so a worker's events are all in one process, and
    two processes never wait on the same worker's rows.
    """
    by_number: dict[int, list[TopicPartition]] = {}
    for tp in sorted(tp for tp in sizes if sizes[tp]):
        by_number.setdefault(tp.partition, []).append(tp)
    load = {number: sum(sizes[tp] for tp in tps) for number, tps in by_number.items()}
    groups: list[list[TopicPartition]] = [[] for _ in range(count)]
    loads = [0] * count
    for number in sorted(by_number, key=lambda n: (-load[n], n)):
        lightest = loads.index(min(loads))
        groups[lightest].extend(by_number[number])
        loads[lightest] += load[number]
    return [group for group in groups if group]


def _load_group(
    rebuilds: Sequence[Rebuild],
    catalogue: EventCatalogue,
    kafka: KafkaSettings,
    history: History | None,
    partitions: list[TopicPartition],
    database_url: str,
) -> list[_Loaded]:
    """One process's part of a rebuild: its partitions, with a pool of its own."""

    async def load() -> list[_Loaded]:
        pool = await retry_forever(
            lambda: asyncpg.create_pool(database_url, min_size=1, max_size=4),
            CONNECTION_LOST,
            "rebuild process: database unreachable",
        )
        try:
            writers = [
                _writer(pool, r.schema, r.projection, catalogue, kafka, history) for r in rebuilds
            ]
            return await _load(writers, kafka, lambda _: None, only=set(partitions))
        finally:
            await pool.close()

    return asyncio.run(load())


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
