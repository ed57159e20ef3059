"""A toy read model over budget allocations, and helpers to drive it, for platform tests."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer

from shared.eventstore import EventStore, NewEvent
from shared.eventstore.migrations import Migration, migrate
from shared.eventstore.store import CommandContext
from shared.projection.changes import Increment, RowChange, Upsert
from shared.projection.decode import ConsumedEvent
from shared.projection.runner import ProjectionRunner
from shared.relay import OutboxRelay
from tests.integration.sandbox import ServiceSandbox

NOW = datetime(2024, 11, 4, 9, 30, tzinfo=UTC)
UNPROCESSABLE_AMOUNT = 13_000_013


@dataclass(frozen=True)
class Allocations:
    """A toy read model: one row per budget allocation event."""

    name: str = "allocations"
    sources: Sequence[str] = ()
    event_types: frozenset[str] = frozenset({"BudgetAllocated"})
    migrations: Sequence[Migration] = ()
    tables: Sequence[str] = ("allocations", "totals")

    def apply(self, event: ConsumedEvent) -> Sequence[RowChange]:
        data = event.envelope.data
        if data["amount"] == UNPROCESSABLE_AMOUNT:
            raise ValueError("an amount this projection's rules refuse")
        return [
            Upsert(
                "allocations",
                {"event_id": event.envelope.event_id},
                {"cohort": data["cohort"], "amount": data["amount"]},
            ),
            # A running total: applying any event twice shows here.
            Increment(
                "totals", {"cohort": data["cohort"]}, {"events": 1, "amount": data["amount"]}
            ),
        ]


@dataclass(frozen=True)
class AcceptingAllocations:
    """The same read model after its rule was fixed: it accepts every amount."""

    inner: Allocations
    name: str = "allocations"

    @property
    def sources(self) -> Sequence[str]:
        return self.inner.sources

    @property
    def event_types(self) -> frozenset[str]:
        return self.inner.event_types

    @property
    def migrations(self) -> Sequence[Migration]:
        return self.inner.migrations

    @property
    def tables(self) -> Sequence[str]:
        return self.inner.tables

    def apply(self, event: ConsumedEvent) -> Sequence[RowChange]:
        data = event.envelope.data
        return [
            Upsert(
                "allocations",
                {"event_id": event.envelope.event_id},
                {"cohort": data["cohort"], "amount": data["amount"]},
            ),
            Increment(
                "totals", {"cohort": data["cohort"]}, {"events": 1, "amount": data["amount"]}
            ),
        ]


def allocations_for(box: ServiceSandbox) -> Allocations:
    return Allocations(
        sources=(box.service,),
        migrations=(
            Migration(
                "allocations",
                "CREATE TABLE {schema}.allocations "
                "(event_id uuid PRIMARY KEY, cohort text NOT NULL, amount bigint NOT NULL);"
                "CREATE TABLE {schema}.totals "
                "(cohort text PRIMARY KEY, events bigint NOT NULL, amount bigint NOT NULL)",
            ),
        ),
    )


async def prepare(box: ServiceSandbox) -> Allocations:
    projection = allocations_for(box)
    async with box.pool.acquire() as conn:
        await migrate(conn, box.schema, projection.migrations)
    return projection


async def append_budgets(
    box: ServiceSandbox,
    amounts: Sequence[int],
    recorded_at: datetime = NOW,
    occurred_at: datetime = NOW,
) -> None:
    store = EventStore(box.pool, box.schema, box.service, clock=lambda: recorded_at)
    for amount in amounts:
        event = NewEvent(
            "BudgetAllocated",
            {"fiscal_year": 2024, "source": "APBD", "amount": amount, "cohort": "regular"},
            occurred_at=occurred_at,
        )
        await store.append(
            f"budget-{uuid.uuid4()}", 0, [event], CommandContext("a", "city_admin", uuid.uuid4())
        )


async def publish(box: ServiceSandbox, producer: AIOKafkaProducer) -> None:
    await OutboxRelay(box.pool, box.schema, box.topic, producer).publish_pending()


async def run_until(
    runner: ProjectionRunner, done: asyncio.Event | None = None, *, until_applied: int
) -> None:
    stop = done or asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:
        for _ in range(600):
            if runner.applied + runner.dead_lettered >= until_applied or task.done():
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await task


async def totals(box: ServiceSandbox) -> tuple[int, int]:
    """(events, amount) from the running total, checked against the per-event rows.

    One statement, so both tables are read from the same snapshot.
    """
    row = await box.pool.fetchrow(
        f"SELECT (SELECT count(*) FROM {box.schema}.allocations), "
        f"(SELECT coalesce(sum(amount), 0) FROM {box.schema}.allocations), "
        f"(SELECT coalesce(sum(events), 0) FROM {box.schema}.totals), "
        f"(SELECT coalesce(sum(amount), 0) FROM {box.schema}.totals)"
    )
    assert row is not None
    assert (row[2], row[3]) == (row[0], row[1]), "an event was applied more than once"
    return int(row[0]), int(row[1])
