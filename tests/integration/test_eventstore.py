"""The event store and the outbox relay on the real PostgreSQL and Kafka."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from shared.eventstore import ConcurrencyError, EventStore, NewEvent
from shared.eventstore.store import CommandContext
from shared.hashing import compute_hash
from shared.relay import OutboxRelay
from shared.relay.outbox import NEXT_BATCH
from shared.topic_reader import read_topics
from tests.integration.sandbox import ServiceSandbox

pytestmark = pytest.mark.integration

NOW = datetime(2024, 11, 4, 9, 30, tzinfo=UTC)


def budget(amount: int) -> NewEvent:
    return NewEvent(
        "BudgetAllocated",
        {"fiscal_year": 2024, "source": "APBD", "amount": amount, "cohort": "regular"},
        occurred_at=NOW,
    )


def context(key: str | None = None) -> CommandContext:
    return CommandContext("admin-1", "city_admin", uuid.uuid4(), idempotency_key=key)


def store_of(box: ServiceSandbox) -> EventStore:
    return EventStore(box.pool, box.schema, box.service, clock=lambda: NOW)


async def topic_envelopes(box: ServiceSandbox) -> list[dict[str, object]]:
    return [
        orjson.loads(record.value)
        async for batch in read_topics(box.kafka, [box.topic])
        for record in batch
    ]


async def test_appends_are_hash_chained_per_stream(sandbox: ServiceSandbox) -> None:
    store = store_of(sandbox)

    await store.append("budget-2024", 0, [budget(1), budget(2)], context())
    await store.append("budget-2024", 2, [budget(3)], context())

    events = [e.envelope for e in await store.read_stream("budget-2024")]
    assert [e["stream_version"] for e in events] == [1, 2, 3]
    assert_chained(events)


def assert_chained(events: list[dict[str, Any]]) -> None:
    """Each event of the stream sealed after the one before it, the first after the genesis."""
    assert events[0]["prev_hash"] == "0" * 64
    for previous, current in itertools.pairwise(events):
        assert current["prev_hash"] == previous["hash"]
    for event in events:
        assert event["hash"] == compute_hash({k: v for k, v in event.items() if k != "hash"})


async def test_a_conflicting_append_is_refused_and_writes_nothing(sandbox: ServiceSandbox) -> None:
    store = store_of(sandbox)
    await store.append("budget-2024", 0, [budget(1)], context())

    with pytest.raises(ConcurrencyError, match="is at version 1, not the expected 0"):
        await store.append("budget-2024", 0, [budget(2)], context())

    assert len(await store.read_stream("budget-2024")) == 1


async def test_two_concurrent_creators_of_a_stream_one_wins(sandbox: ServiceSandbox) -> None:
    store = store_of(sandbox)

    results = await asyncio.gather(
        *(store.append("budget-2025", 0, [budget(n)], context()) for n in range(5)),
        return_exceptions=True,
    )

    assert sum(not isinstance(r, Exception) for r in results) == 1
    assert all(isinstance(r, ConcurrencyError) for r in results if isinstance(r, Exception))
    assert len(await store.read_stream("budget-2025")) == 1


async def test_a_retried_command_returns_the_first_result_and_appends_nothing(
    sandbox: ServiceSandbox,
) -> None:
    store = store_of(sandbox)

    first = await store.append("budget-2024", None, [budget(1)], context("request-7"))
    again = await store.append("budget-2024", None, [budget(1)], context("request-7"))
    concurrent = await asyncio.gather(
        *(store.append("budget-2024", None, [budget(9)], context("request-8")) for _ in range(4))
    )

    assert not first.duplicate
    assert again.duplicate
    assert again.event_ids == first.event_ids
    assert await store.find_command("request-7") == again
    assert sum(not r.duplicate for r in concurrent) == 1
    assert len({r.event_ids for r in concurrent}) == 1
    assert len(await store.read_stream("budget-2024")) == 2


async def test_relay_publishes_an_append_that_committed_late_without_skipping_it(
    sandbox: ServiceSandbox, producer: AIOKafkaProducer
) -> None:
    store = store_of(sandbox)
    relay = OutboxRelay(sandbox.pool, sandbox.schema, sandbox.topic, producer)

    async with sandbox.pool.acquire() as slow, slow.transaction():
        # The slow append takes the lower position but has not committed yet...
        late = await store.append_within(slow, "budget-early", 0, [budget(1)], context())
        # ...while a later append commits and is published first.
        early = await store.append("budget-late", 0, [budget(2)], context())
        assert await relay.publish_pending() == 1
    assert await relay.publish_pending() == 1

    positions = {
        e.envelope["event_id"]: e.position
        for stream in ("budget-early", "budget-late")
        for e in await store.read_stream(stream)
    }
    late_id, early_id = str(late.event_ids[0]), str(early.event_ids[0])
    # A poller reading "position > last published" would have skipped the late one for good.
    assert positions[late_id] < positions[early_id]
    published = {str(e["event_id"]) for e in await topic_envelopes(sandbox)}
    assert published == {late_id, early_id}
    assert await relay.backlog() == 0


async def test_records_carry_the_contract_key_and_headers(
    sandbox: ServiceSandbox, producer: AIOKafkaProducer
) -> None:
    store = store_of(sandbox)
    worker = uuid.uuid4()
    event = NewEvent("CoverageEnded", {"worker_id": str(worker)}, occurred_at=NOW, worker_id=worker)
    await store.append(f"worker-{worker}", 0, [event], context())
    await store.append("budget-2024", 0, [budget(1)], context())

    await OutboxRelay(sandbox.pool, sandbox.schema, sandbox.topic, producer).publish_pending()

    records = [r async for batch in read_topics(sandbox.kafka, [sandbox.topic]) for r in batch]
    keys = {r.key for r in records}
    assert keys == {str(worker).encode(), b"budget-2024"}
    headers = dict(records[0].headers)
    assert set(headers) == {
        *("event_type", "schema_version", "content-type", "correlation_id"),
        *("ce_specversion", "ce_id", "ce_type", "ce_source", "ce_subject", "ce_time"),
    }
    assert headers["content-type"] == b"application/json"


async def test_relay_crash_before_marking_republishes_and_loses_nothing(
    sandbox: ServiceSandbox, producer: AIOKafkaProducer, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = store_of(sandbox)
    relay = OutboxRelay(sandbox.pool, sandbox.schema, sandbox.topic, producer)
    await store.append("budget-2024", 0, [budget(1), budget(2)], context())

    async def killed_before_marking(positions: list[int]) -> None:
        raise ConnectionResetError("relay killed after publishing, before marking")

    monkeypatch.setattr(relay, "_mark_published", killed_before_marking)
    with pytest.raises(ConnectionResetError):
        await relay.publish_pending()
    monkeypatch.undo()
    assert await relay.backlog() == 2

    assert await relay.publish_pending() == 2

    ids = [e["event_id"] for e in await topic_envelopes(sandbox)]
    assert len(ids) == 4  # each event twice: republished, never lost
    assert len(set(ids)) == 2


async def test_relay_run_publishes_on_notify_and_flushes_on_stop(
    sandbox: ServiceSandbox, producer: AIOKafkaProducer
) -> None:
    store = store_of(sandbox)
    relay = OutboxRelay(sandbox.pool, sandbox.schema, sandbox.topic, producer, poll_interval=30)
    stop = asyncio.Event()
    running = asyncio.create_task(relay.run(stop, store.notify_channel))

    for n in range(20):
        await store.append("budget-2024", n, [budget(n)], context())
    for _ in range(100):
        if await relay.backlog() == 0:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await running

    assert await relay.backlog() == 0
    assert len(await topic_envelopes(sandbox)) == 20


def _rows_read_from(plan: dict[str, Any], table: str) -> int:
    own = plan["Actual Rows"] * plan["Actual Loops"] if plan.get("Relation Name") == table else 0
    return own + sum(_rows_read_from(child, table) for child in plan.get("Plans", ()))


async def test_a_relay_batch_reads_only_the_events_it_publishes(sandbox: ServiceSandbox) -> None:
    store = store_of(sandbox)
    for year in range(6):
        await store.append(f"budget-{year}", 0, [budget(n + 1) for n in range(500)], context())
    schema = sandbox.schema
    async with sandbox.pool.acquire() as conn:
        # The first 2,000 published, 1,000 waiting: what a relay meets during a large import,
        # where the planner expects the waiting ones spread among all the events.
        await conn.execute(
            f"DELETE FROM {schema}.outbox "
            f"WHERE position <= (SELECT min(position) + 1999 FROM {schema}.outbox)"
        )
        await conn.execute(f"ANALYZE {schema}.events")
        await conn.execute(f"ANALYZE {schema}.outbox")
        explained = await conn.fetchval(
            f"EXPLAIN (ANALYZE, FORMAT JSON) {NEXT_BATCH.format(schema=schema)}", 10
        )
    plan = orjson.loads(explained)[0]["Plan"]
    assert _rows_read_from(plan, "events") == 10  # not the 2,000 published before them
