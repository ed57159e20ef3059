"""A broker restart in the middle of a run: the relay and the projection resume on their own."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaProducer

from contract.events.registry import CATALOGUE
from deploy.local import kafka_broker
from deploy.local.stack import Endpoints
from shared.eventstore.store import EventStore
from shared.projection.runner import ProjectionRunner
from shared.relay import OutboxRelay
from tests.integration.sandbox import ServiceSandbox
from tests.integration.toy_projection import append_budgets, prepare, totals

pytestmark = pytest.mark.integration


async def test_relay_and_runner_resume_after_the_broker_restarts(
    infrastructure: Endpoints, sandbox: ServiceSandbox, producer: AIOKafkaProducer
) -> None:
    if infrastructure.kafka_bootstrap_servers != kafka_broker.SINGLE.bootstrap_servers:
        pytest.skip("restarts the local broker; this run uses a broker it does not manage")
    projection = await prepare(sandbox)
    store = EventStore(sandbox.pool, sandbox.schema, sandbox.service)
    relay = OutboxRelay(sandbox.pool, sandbox.schema, sandbox.topic, producer, poll_interval=0.2)
    runner = ProjectionRunner(sandbox.pool, sandbox.schema, projection, CATALOGUE, sandbox.kafka)
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(relay.run(stop, store.notify_channel)),
        asyncio.create_task(runner.run(stop)),
    ]
    await append_budgets(sandbox, range(1, 11))
    for _ in range(200):
        if (await totals(sandbox))[0] == 10:
            break
        await asyncio.sleep(0.05)

    await asyncio.to_thread(kafka_broker.down, kafka_broker.SINGLE)
    await append_budgets(sandbox, range(11, 21))  # accepted while the broker is down
    await asyncio.sleep(1)
    await asyncio.to_thread(kafka_broker.up, kafka_broker.SINGLE)
    for _ in range(1200):
        if (await totals(sandbox))[0] == 20:
            break
        await asyncio.sleep(0.1)
    stop.set()
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)

    assert await totals(sandbox) == (20, sum(range(1, 21)))
    assert await relay.backlog() == 0
