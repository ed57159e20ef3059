"""Replay equals incremental application, for any valid history: budget streams of any length,
interleaved in any order on one partition, some records delivered twice. Built on PostgreSQL by
the projection writer the live runners use, once as a replay (the whole log in one batch) and
once as a live consumer sees it (batches of any sizes); both tables are the same, and hold the
amounts the events add up to."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import asyncpg
import orjson
import pytest
from aiokafka import ConsumerRecord, TopicPartition
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contract.events.registry import CATALOGUE
from services.billing.projections import AllocationsProjection
from shared.eventstore.migrations import PLATFORM, migrate
from shared.projection.replay import empty_schema, rows_differing
from shared.projection.writer import ProjectionWriter
from shared.settings import DatabaseSettings
from tests.unit.chains import sealed_chain

pytestmark = pytest.mark.integration
TOPIC = "property.billing.events"
PARTITION = TopicPartition(TOPIC, 0)
PROJECTION = AllocationsProjection()


def records_of(envelopes: list[dict[str, Any]]) -> list[ConsumerRecord[bytes, bytes]]:
    return [
        ConsumerRecord(
            topic=TOPIC,
            partition=0,
            offset=offset,
            timestamp=0,
            timestamp_type=0,
            key=envelope["stream_id"].encode(),
            value=orjson.dumps(envelope),
            checksum=None,
            serialized_key_size=0,
            serialized_value_size=0,
            headers=(("event_type", envelope["event_type"].encode()),),
        )
        for offset, envelope in enumerate(envelopes)
    ]


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[int]]:
    """Sealed streams interleaved (each in its own order), some records again later, and the
    sizes of the batches a live consumer happens to get."""
    streams = [
        sealed_chain(f"budget-{n}", draw(st.integers(1, 6)), draw(st.integers(1, 10**9)))
        for n in range(draw(st.integers(1, 4)))
    ]
    order = draw(st.permutations([n for n, chain in enumerate(streams) for _ in chain]))
    cursors = [0] * len(streams)
    log = []
    for n in order:
        log.append(streams[n][cursors[n]])
        cursors[n] += 1
    for _ in range(draw(st.integers(0, 3))):  # redelivered, after the original
        log.append(log[draw(st.integers(0, len(log) - 1))])
    cuts = sorted(set(draw(st.lists(st.integers(1, len(log)), max_size=len(log)))))
    sizes = [b - a for a, b in zip([0, *cuts], [*cuts, len(log)], strict=True) if b > a]
    return log, sizes


async def build(pool: asyncpg.Pool, schema: str, records: list[Any], sizes: list[int]) -> None:
    async with pool.acquire() as conn:
        await empty_schema(conn, schema)
        await migrate(conn, schema, [*PLATFORM, *PROJECTION.migrations])
    writer = ProjectionWriter(pool, schema, PROJECTION, CATALOGUE, {TOPIC: "billing"}, "property")
    start = 0
    for size in sizes:
        await writer.write(PARTITION, records[start : start + size])
        start += size


async def replay_and_incremental(
    database: DatabaseSettings, log: list[dict[str, Any]], sizes: list[int]
) -> tuple[int, dict[str, int]]:
    pool = await asyncpg.create_pool(database.database_url, min_size=1, max_size=2)
    try:
        records = records_of(log)
        await build(pool, "property_replay", records, [len(records)])
        await build(pool, "property_live", records, sizes)
        differing = await rows_differing(pool, "allocations", "property_replay", "property_live")
        totals = {
            r["source"]: r["allocated"]
            for r in await pool.fetch("SELECT source, allocated FROM property_live.allocations")
        }
        return differing, totals
    finally:
        await pool.close()


@settings(
    max_examples=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=histories())
def test_replay_equals_incremental_application(
    migrated: DatabaseSettings, history: tuple[list[dict[str, Any]], list[int]]
) -> None:
    log, sizes = history
    differing, totals = asyncio.run(replay_and_incremental(migrated, log, sizes))
    assert differing == 0
    once = {e["event_id"]: e for e in log}.values()  # a redelivered record counts once
    expected: Counter[str] = Counter()
    for event in once:
        expected[event["data"]["source"]] += event["data"]["amount"]
    assert totals == dict(expected)
