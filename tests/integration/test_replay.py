"""Replay: projections rebuilt from the topics alone equal the live ones; history as of a time."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta

import pytest
from aiokafka import AIOKafkaProducer

from contract.events.registry import CATALOGUE
from shared.projection.replay import History, rebuild_and_switch, rebuild_into, table_digest
from shared.projection.runner import ProjectionRunner
from tests.integration.sandbox import ServiceSandbox
from tests.integration.toy_projection import append_budgets, prepare, publish, run_until, totals

pytestmark = pytest.mark.integration

TABLES = ("allocations", "totals")


async def digests(box: ServiceSandbox, schema: str) -> dict[str, str]:
    return {table: await table_digest(box.pool, schema, table) for table in TABLES}


async def test_a_rebuilt_projection_equals_the_live_one_and_twice_gives_the_same_bytes(
    sandbox: ServiceSandbox, producer: AIOKafkaProducer
) -> None:
    projection = await prepare(sandbox)
    await append_budgets(sandbox, range(1, 41))
    await publish(sandbox, producer)
    await run_until(
        ProjectionRunner(sandbox.pool, sandbox.schema, projection, CATALOGUE, sandbox.kafka),
        until_applied=40,
    )
    seen: list[int] = []

    first = await rebuild_into(
        sandbox.pool,
        f"{sandbox.schema}_r1",
        projection,
        CATALOGUE,
        sandbox.kafka,
        progress=seen.append,
    )
    second = await rebuild_into(
        sandbox.pool, f"{sandbox.schema}_r2", projection, CATALOGUE, sandbox.kafka
    )

    assert first.applied == second.applied == 40
    assert sum(seen) == 40
    live = await digests(sandbox, sandbox.schema)
    assert await digests(sandbox, first.schema) == live
    assert await digests(sandbox, second.schema) == live


async def test_history_as_known_at_a_time_and_as_true_on_a_date(
    sandbox: ServiceSandbox, producer: AIOKafkaProducer
) -> None:
    projection = await prepare(sandbox)
    january = datetime(2025, 1, 10, 9, tzinfo=UTC)
    march = datetime(2025, 3, 10, 9, tzinfo=UTC)
    await append_budgets(sandbox, [100, 200], recorded_at=january, occurred_at=january)
    # Recorded in March, but true since February (a late entry of an earlier fact).
    await append_budgets(
        sandbox, [1000], recorded_at=march, occurred_at=january + timedelta(days=30)
    )
    await append_budgets(sandbox, [5000], recorded_at=march, occurred_at=march)
    await publish(sandbox, producer)

    async def total(history: History, name: str) -> int:
        result = await rebuild_into(
            sandbox.pool, f"{sandbox.schema}_{name}", projection, CATALOGUE, sandbox.kafka, history
        )
        value = await sandbox.pool.fetchval(
            f"SELECT coalesce(sum(amount), 0) FROM {result.schema}.totals"
        )
        return int(value)

    assert await total(History(known_at=datetime(2025, 2, 15, tzinfo=UTC)), "known_feb") == 300
    assert await total(History(true_on=date(2025, 2, 15)), "true_feb") == 1300
    assert await total(History(), "all") == 6300


async def test_rebuild_and_switch_under_load_loses_nothing_and_applies_nothing_twice(
    sandbox: ServiceSandbox, producer: AIOKafkaProducer
) -> None:
    projection = await prepare(sandbox)
    stop = asyncio.Event()
    live = ProjectionRunner(
        sandbox.pool, sandbox.schema, projection, CATALOGUE, sandbox.kafka, max_batch=10
    )
    running = asyncio.create_task(live.run(stop))
    await append_budgets(sandbox, range(1, 51))
    await publish(sandbox, producer)

    async def keep_writing() -> None:
        for start in range(51, 151, 10):
            await append_budgets(sandbox, range(start, start + 10))
            await publish(sandbox, producer)
            await asyncio.sleep(0.02)

    writing = asyncio.create_task(keep_writing())
    await asyncio.sleep(0.1)
    await rebuild_and_switch(sandbox.pool, sandbox.schema, projection, CATALOGUE, sandbox.kafka)
    await writing
    for _ in range(400):
        if (await totals(sandbox))[0] >= 150:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await running

    assert await totals(sandbox) == (150, sum(range(1, 151)))
    rebuilt = await rebuild_into(
        sandbox.pool, f"{sandbox.schema}_check", projection, CATALOGUE, sandbox.kafka
    )
    assert await digests(sandbox, rebuilt.schema) == await digests(sandbox, sandbox.schema)
