"""An event too large for its topic on the real PostgreSQL and Kafka: refused before the append;
and one that reached the outbox around that check is parked, with the later events of its
stream, while every other event goes on to the topic and the backlog gauge counts it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import NewTopic
from prometheus_client import REGISTRY

from shared.eventstore import EventStore, NewEvent
from shared.eventstore.store import CommandContext, EnvelopeTooLargeError
from shared.kafka_clients import producer_options
from shared.relay import OutboxRelay
from shared.settings import KafkaSettings
from shared.topic_reader import read_topics
from shared.topics import EVENT_TOPIC_CONFIG, ensure_topics
from tests.integration.sandbox import ServiceSandbox

pytestmark = pytest.mark.integration

NOW = datetime(2024, 11, 4, 9, 30, tzinfo=UTC)
# What a store of earlier code, or a hand-made INSERT, could put in the outbox: far past the
# check, so the relay meets the record.
NO_CHECK = 64 * 2**20


def event(size: int = 10) -> NewEvent:
    return NewEvent("BudgetAllocated", {"note": "x" * size}, NOW)


def context() -> CommandContext:
    return CommandContext("officer-1", "city_admin", uuid.uuid4())


async def count(box: ServiceSandbox, table: str) -> int:
    return int(await box.pool.fetchval(f"SELECT count(*) FROM {box.schema}.{table}"))


async def streams_on(kafka: KafkaSettings, topic: str) -> list[str]:
    return [
        orjson.loads(record.value)["stream_id"]
        async for batch in read_topics(kafka, [topic])
        for record in batch
    ]


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 120.0) -> None:
    for _ in range(int(within / 0.2)):
        if await check():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"not within {within}s")


def gauge(name: str, box: ServiceSandbox) -> float | None:
    return REGISTRY.get_sample_value(name, {"service": box.schema})


async def test_an_envelope_too_large_for_the_topic_is_refused_and_nothing_is_stored(
    sandbox: ServiceSandbox,
) -> None:
    store = EventStore(sandbox.pool, sandbox.schema, sandbox.service)
    limit = KafkaSettings().max_envelope_bytes

    with pytest.raises(EnvelopeTooLargeError, match=r"over the [\d,]+ bytes .* 'note'") as refused:
        await store.append("budget-2024", 0, [event(limit)], context())

    assert refused.value.field == "note"
    assert [await count(sandbox, t) for t in ("events", "outbox", "streams")] == [0, 0, 0]
    assert (await store.append("budget-2024", 0, [event()], context())).last_version == 1


async def run_relay(relay: OutboxRelay, channel: str, until: Callable[[], Awaitable[bool]]) -> None:
    stop = asyncio.Event()
    running = asyncio.create_task(relay.run(stop, channel))
    try:
        await eventually(until)
    finally:
        stop.set()
        await running


async def test_a_record_the_producer_refuses_is_parked_and_the_rest_reaches_the_topic(
    sandbox: ServiceSandbox, producer: AIOKafkaProducer
) -> None:
    bypass = EventStore(sandbox.pool, sandbox.schema, sandbox.service, max_envelope_bytes=NO_CHECK)
    store = EventStore(sandbox.pool, sandbox.schema, sandbox.service)
    await store.append("before", 0, [event()], context())
    # 1.3 MB, as the sealed registration with a 1 MB heir name was.
    await bypass.append("oversized", 0, [event(1_300_000)], context())
    await store.append("oversized", 1, [event()], context())  # its stream's next event
    for n in range(5):
        await store.append(f"after-{n}", 0, [event()], context())
    relay = OutboxRelay(sandbox.pool, sandbox.schema, sandbox.topic, producer)

    async def everything_else_published() -> bool:
        return len(await streams_on(sandbox.kafka, sandbox.topic)) == 6

    await run_relay(relay, store.notify_channel, everything_else_published)

    assert sorted(await streams_on(sandbox.kafka, sandbox.topic)) == sorted(
        ["before", *(f"after-{n}" for n in range(5))]
    )
    parked = await sandbox.pool.fetch(
        f"SELECT e.stream_id, e.stream_version, p.reason FROM {sandbox.schema}.outbox_parked p "
        f"JOIN {sandbox.schema}.events e USING (position) ORDER BY p.position"
    )
    assert [(r["stream_id"], r["stream_version"]) for r in parked] == [
        ("oversized", 1),
        ("oversized", 2),
    ]
    assert parked[0]["reason"].startswith("MessageSizeTooLargeError")
    assert parked[1]["reason"] == "behind an earlier parked event of its stream"
    assert await count(sandbox, "outbox") == 0
    assert await relay.backlog() == 2
    assert gauge("berlian_outbox_backlog", sandbox) == 2
    assert gauge("berlian_outbox_parked", sandbox) == 2
    assert relay.producer is producer  # refused before sending: nothing to renew


async def test_a_record_the_broker_refuses_is_parked_and_a_new_producer_goes_on(
    sandbox: ServiceSandbox,
) -> None:
    # One partition, so that every later record follows the refused one on it, and a topic
    # limit below the producer's: the broker itself refuses, after the record was numbered.
    topic = f"{sandbox.topic}.small"
    await ensure_topics(
        sandbox.kafka,
        [NewTopic(topic, 1, 1, topic_configs={**EVENT_TOPIC_CONFIG, "max.message.bytes": "65536"})],
    )
    bypass = EventStore(sandbox.pool, sandbox.schema, sandbox.service, max_envelope_bytes=NO_CHECK)
    store = EventStore(sandbox.pool, sandbox.schema, sandbox.service)
    await store.append("before", 0, [event()], context())
    await bypass.append("oversized", 0, [event(200_000)], context())
    await store.append("oversized", 1, [event()], context())
    for n in range(3):
        await store.append(f"after-{n}", 0, [event()], context())
    first = AIOKafkaProducer(**producer_options(sandbox.kafka))
    await first.start()
    await first.partitions_for(topic)  # the new topic known before the relay starts
    relay = OutboxRelay(
        sandbox.pool,
        sandbox.schema,
        topic,
        first,
        new_producer=lambda: AIOKafkaProducer(**producer_options(sandbox.kafka)),
    )
    try:

        async def everything_else_published() -> bool:
            return len(await streams_on(sandbox.kafka, topic)) >= 4

        await run_relay(relay, store.notify_channel, everything_else_published)
    finally:
        await first.stop()
        await relay.producer.stop()

    published = await streams_on(sandbox.kafka, topic)
    assert published[0] == "before"
    assert set(published) == {"before", "after-0", "after-1", "after-2"}
    parked = await sandbox.pool.fetch(
        f"SELECT e.stream_id, p.reason FROM {sandbox.schema}.outbox_parked p "
        f"JOIN {sandbox.schema}.events e USING (position) ORDER BY p.position"
    )
    assert [r["stream_id"] for r in parked] == ["oversized", "oversized"]
    assert parked[0]["reason"].startswith("MessageSizeTooLargeError")
    assert relay.producer is not first
    assert await relay.backlog() == 2
