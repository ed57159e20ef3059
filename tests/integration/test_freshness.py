"""A decision on another service's events waits until the projection it reads has caught up."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaProducer

from contract.events.registry import CATALOGUE
from shared.projection.freshness import ProjectionBehindError, wait_until_caught_up
from shared.projection.runner import ProjectionRunner
from tests.integration.sandbox import ServiceSandbox
from tests.integration.toy_projection import append_budgets, prepare, publish, totals

pytestmark = pytest.mark.integration


async def test_a_decision_waits_for_a_delayed_consumer_and_then_sees_every_event(
    sandbox: ServiceSandbox, producer: AIOKafkaProducer
) -> None:
    projection = await prepare(sandbox)
    await append_budgets(sandbox, range(1, 31))
    await publish(sandbox, producer)
    stop = asyncio.Event()
    runner = ProjectionRunner(
        sandbox.pool, sandbox.schema, projection, CATALOGUE, sandbox.kafka, max_batch=5
    )

    async def delayed_consumer() -> None:
        await asyncio.sleep(1.5)  # deliberately behind when the decision is asked for
        await runner.run(stop)

    consuming = asyncio.create_task(delayed_consumer())
    assert (await totals(sandbox))[0] == 0

    await wait_until_caught_up(
        sandbox.pool, sandbox.schema, projection.name, sandbox.kafka, [sandbox.service], max_wait=30
    )
    seen_by_the_decision = await totals(sandbox)
    stop.set()
    await consuming

    assert seen_by_the_decision == (30, sum(range(1, 31)))


async def test_a_projection_that_does_not_catch_up_refuses_the_decision_with_its_lag(
    sandbox: ServiceSandbox, producer: AIOKafkaProducer
) -> None:
    projection = await prepare(sandbox)
    await append_budgets(sandbox, range(1, 11))
    await publish(sandbox, producer)

    with pytest.raises(ProjectionBehindError, match="has not caught up") as raised:
        await wait_until_caught_up(
            sandbox.pool,
            sandbox.schema,
            projection.name,
            sandbox.kafka,
            [sandbox.service],
            max_wait=0.5,
        )

    assert sum(raised.value.behind.values()) == 10
