"""A batch whose commit fails is written again: its events and dead letters are counted once,
when the attempt that committed them is done, not once per attempt."""

from __future__ import annotations

import asyncpg
import orjson
import pytest
from aiokafka import ConsumerRecord, TopicPartition

from contract.events.registry import CATALOGUE
from services.billing.projections import AllocationsProjection
from shared.eventstore.migrations import PLATFORM, migrate
from shared.projection.replay import empty_schema
from shared.projection.writer import ProjectionWriter
from shared.settings import DatabaseSettings
from shared.telemetry import DEAD_LETTERS, EVENTS_CONSUMED
from tests.unit.chains import sealed_chain

pytestmark = pytest.mark.integration
SCHEMA = "counted_once"
TOPIC = "counted.billing.events"
CONSUMER = "counted-once"
PROJECTION = AllocationsProjection()
# Fails the commit of the first transaction that moves a position, and no other: the sequence
# is not rolled back with the transaction, so the retried batch commits.
FAIL_FIRST_COMMIT = f"""
CREATE SEQUENCE {SCHEMA}.commits;
CREATE FUNCTION {SCHEMA}.fail_first_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF nextval('{SCHEMA}.commits') = 1 THEN
        RAISE EXCEPTION 'commit refused once' USING ERRCODE = 'serialization_failure';
    END IF;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER fail_first_commit AFTER UPDATE ON {SCHEMA}.projection_positions
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION {SCHEMA}.fail_first_commit();
"""


def record(offset: int, value: bytes, event_type: str) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic=TOPIC,
        partition=0,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=b"budget-1",
        value=value,
        checksum=None,
        serialized_key_size=0,
        serialized_value_size=0,
        headers=(("event_type", event_type.encode()),),
    )


def counted(counter: object, *labels: str) -> float:
    return sum(
        sample.value
        for metric in counter.collect()  # type: ignore[attr-defined]
        for sample in metric.samples
        if sample.name.endswith("_total") and tuple(sample.labels.values())[: len(labels)] == labels
    )


async def test_a_batch_retried_after_a_failed_commit_is_counted_once(
    migrated: DatabaseSettings,
) -> None:
    envelope = sealed_chain("budget-1", 1, 1_000_000)[0]
    batch = [
        record(0, orjson.dumps(envelope), envelope["event_type"]),
        record(1, b"not an envelope", envelope["event_type"]),
    ]
    consumed_before = counted(EVENTS_CONSUMED, CONSUMER)
    letters_before = counted(DEAD_LETTERS, CONSUMER)
    pool = await asyncpg.create_pool(migrated.database_url, min_size=1, max_size=2)
    try:
        async with pool.acquire() as conn:
            await empty_schema(conn, SCHEMA)
            await conn.execute(f"DROP SEQUENCE IF EXISTS {SCHEMA}.commits CASCADE")
            await conn.execute(f"DROP FUNCTION IF EXISTS {SCHEMA}.fail_first_commit CASCADE")
            await migrate(conn, SCHEMA, [*PLATFORM, *PROJECTION.migrations])
            await conn.execute(FAIL_FIRST_COMMIT)
        writer = ProjectionWriter(pool, SCHEMA, PROJECTION, CATALOGUE, {TOPIC: "billing"}, CONSUMER)
        assert await writer.write(TopicPartition(TOPIC, 0), batch) == 2
        assert await pool.fetchval(f"SELECT last_value FROM {SCHEMA}.commits") == 2
        letters = await pool.fetchval(f"SELECT count(*) FROM {SCHEMA}.dead_letters")
        allocated = await pool.fetchval(f"SELECT count(*) FROM {SCHEMA}.allocations")
    finally:
        await pool.close()
    assert (letters, allocated) == (1, 1)
    assert (writer.applied, writer.dead_lettered) == (1, 1)
    assert counted(EVENTS_CONSUMED, CONSUMER) - consumed_before == 1
    assert counted(DEAD_LETTERS, CONSUMER) - letters_before == 1
