"""Scenarios 4 and 5 on the running services.

Poison and hostile records written straight onto enrolment's topic (not JSON, an unknown type,
a wrong hash, a huge record, an event claiming another producer) are dead-lettered by every
consumer of that topic with their reason, and the commands after them go through.

Redelivery: with the services stopped, every projection is sent back to the start of its
topics and every enrolment record is published a second time; started again, the services
change nothing: every table is as it was.
"""

from __future__ import annotations

import asyncio
import copy
import uuid
from typing import Any

import asyncpg
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from services.catalog import PROJECTIONS
from shared.hashing import compute_hash
from shared.kafka_clients import producer_options
from shared.projection.freshness import wait_until_caught_up
from shared.projection.replay import table_digest
from shared.relay.outbox import record_headers, record_key
from shared.settings import DatabaseSettings, KafkaSettings
from tests.integration.programme_world import (
    World,
    environment,
    start_services,
    stop,
    wait_ready,
    world,
)
from tests.reliability.checker import readable
from tests.reliability.figures import Figures
from tests.reliability.load import SUSTAINED, Load

__all__ = ["world"]  # the fixture, used by name
pytestmark = [pytest.mark.integration, pytest.mark.reliability, pytest.mark.slow]
CONSUMERS_OF_ENROLMENT = {
    "enrolment": ["enrolment.workers"],
    "verification": ["verification.cases"],
    "billing": ["billing.coverages"],
    "claims": ["claims.coverages"],
}
READ_REGISTRATIONS = {"enrolment.workers", "verification.cases"}
REASONS = (
    "value is not JSON",
    "unknown event type",
    "hash mismatch",
    "record of",
    "event claims producer",
)


Planted = list[tuple[bytes, bytes, list[tuple[str, bytes]]]]  # key, value, headers


def sealed_copy(genuine: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A copy about a worker of its own (no genuine stream is touched), hashed after
    ``changes``."""
    worker = str(uuid.uuid4())
    copied = copy.deepcopy(genuine) | changes
    copied |= {"event_id": str(uuid.uuid4()), "worker_id": worker, "stream_id": f"worker-{worker}"}
    copied["data"]["worker_id"] = worker
    copied.pop("hash")
    copied["hash"] = compute_hash(copied)
    return copied


def hostile_records(genuine: dict[str, Any]) -> Planted:
    """One record of each kind, built from a genuine registration."""
    unknown = sealed_copy(genuine, event_type="WorkerTeleported")
    altered = sealed_copy(genuine)
    altered["data"]["birth_date"] = "1990-01-01"  # after hashing
    impostor = sealed_copy(genuine, producer="billing")
    registered = [("event_type", b"WorkerRegistered")]
    key = b"hostile"  # one partition, so that every consumer meets them in this order
    return [
        (key, b"\x00\xffnot json", []),
        (key, orjson.dumps(unknown), [("event_type", b"WorkerTeleported")]),
        (key, orjson.dumps(altered), registered),
        (key, b'{"padding": "' + b"x" * 300_000 + b'"}', registered),
        (key, orjson.dumps(impostor), registered),
    ]


async def first_registration(kafka: KafkaSettings) -> dict[str, Any]:
    """A registration on enrolment's topic, waited for (an overloaded service may not have
    published one yet)."""
    for _ in range(120):
        for envelope in await readable(kafka, "enrolment"):
            if envelope["event_type"] == "WorkerRegistered":
                return envelope
        await asyncio.sleep(1)
    raise AssertionError("no registration reached enrolment's topic in two minutes")


async def plant(kafka: KafkaSettings, records: Planted) -> frozenset[tuple[str, int, int]]:
    """Written straight onto enrolment's topic; returns where they landed."""
    producer = AIOKafkaProducer(**producer_options(kafka))
    await producer.start()
    try:
        topic = kafka.events_topic("enrolment")
        # All sent before any is awaited (thousands in the redelivery scenario); the idempotent
        # producer keeps each partition's records in the order sent.
        deliveries = [
            await producer.send(topic, value, key=key, headers=headers)
            for key, value, headers in records
        ]
        sent = [await delivery for delivery in deliveries]
    finally:
        await producer.stop()
    return frozenset((m.topic, m.partition, m.offset) for m in sent)


async def dead_letter_reasons(database: DatabaseSettings) -> dict[str, list[str]]:
    conn = await asyncpg.connect(database.database_url)
    try:
        reasons: dict[str, list[str]] = {}
        for service, consumers in CONSUMERS_OF_ENROLMENT.items():
            for row in await conn.fetch(
                f"SELECT consumer, reason FROM {service}.dead_letters ORDER BY kafka_offset"
            ):
                if row["consumer"] in consumers:
                    reasons.setdefault(row["consumer"], []).append(row["reason"])
        return reasons
    finally:
        await conn.close()


@pytest.mark.scenario("poison and hostile records")
async def test_hostile_records_are_dead_lettered_and_the_commands_after_them_go_through(
    world: World, figures: Figures
) -> None:
    kafka, database, _ = world
    load = Load(first_person=2_000_000)
    async with load.running(at_least=SUSTAINED):
        await asyncio.sleep(SUSTAINED / 2)
        planted = await plant(kafka, hostile_records(await first_registration(kafka)))

    faults = f"{len(planted)} records written onto the enrolment topic"
    await figures.checked(kafka, database, load, faults, planted)
    reasons = await dead_letter_reasons(database)
    for consumers in CONSUMERS_OF_ENROLMENT.values():
        for consumer in consumers:
            # A consumer that does not read registrations passes over records labelled as one
            # unread; whatever it cannot even label, it dead-letters too.
            expected = REASONS if consumer in READ_REGISTRATIONS else REASONS[:2]
            assert len(reasons[consumer]) == len(expected), (consumer, reasons[consumer])
            for start, reason in zip(expected, reasons[consumer], strict=True):
                assert reason.startswith(start), (consumer, reason)


async def digests(database: DatabaseSettings) -> dict[str, str]:
    pool = await asyncpg.create_pool(database.database_url, min_size=1, max_size=2)
    try:
        return {
            f"{service}.{table}": await table_digest(pool, service, table)
            for service, projections in PROJECTIONS.items()
            for projection in projections
            for table in projection.tables
        }
    finally:
        await pool.close()


@pytest.mark.scenario("redelivery")
async def test_every_record_delivered_twice_changes_nothing(world: World, figures: Figures) -> None:
    kafka, database, processes = world
    load = Load(first_person=3_000_000)
    # The load comes before the fault: the tables are compared as they were before it.
    async with load.running(at_least=SUSTAINED):
        pass
    await wait_caught_up(kafka, database)
    stop(processes.values())
    before = await digests(database)

    records = await readable(kafka, "enrolment")
    await plant(kafka, [(record_key(e), orjson.dumps(e), record_headers(e)) for e in records])
    conn = await asyncpg.connect(database.database_url)
    try:
        for service in PROJECTIONS:
            await conn.execute(f"UPDATE {service}.projection_positions SET next_offset = 0")
    finally:
        await conn.close()
    processes.update(start_services(environment(kafka, database)))
    await wait_ready(processes)
    await wait_caught_up(kafka, database)

    assert await digests(database) == before
    faults = f"every projection sent back to offset 0; {len(records)} records published twice"
    await figures.checked(kafka, database, load, faults)


async def wait_caught_up(kafka: KafkaSettings, database: DatabaseSettings) -> None:
    pool = await asyncpg.create_pool(database.database_url, min_size=1, max_size=2)
    try:
        for service, projections in PROJECTIONS.items():
            for projection in projections:
                await wait_until_caught_up(
                    pool, service, projection.name, kafka, projection.sources, max_wait=120
                )
    finally:
        await pool.close()
