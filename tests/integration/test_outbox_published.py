"""``GET /outbox/published`` on the real stack: it answers once what the outbox held when asked is
on the topic, and refuses (503, naming why) past its bound or past too many waiters; the
freshness wait asks it first and refuses a decision, naming the producer, without its answer."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from deploy.local.outboxes import outbox_app
from shared.projection.freshness import (
    ProducerOutboxes,
    ProducerUnansweredError,
    wait_until_caught_up,
)
from shared.relay import OutboxRelay
from tests.integration.producers import decided_after
from tests.integration.programme_world import free_port
from tests.integration.sandbox import ServiceSandbox
from tests.integration.toy_projection import append_budgets, prepare, publish

pytestmark = pytest.mark.integration


def client_of(box: ServiceSandbox, max_wait: float = 10.0) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=outbox_app(box.pool, box.schema, max_wait))
    return httpx.AsyncClient(transport=transport, base_url="http://producer", timeout=30)


async def test_it_answers_once_what_was_committed_is_published(
    sandbox: ServiceSandbox, producer: AIOKafkaProducer
) -> None:
    await append_budgets(sandbox, range(1, 6))  # committed, the relay not running yet
    relay = OutboxRelay(sandbox.pool, sandbox.schema, sandbox.topic, producer)
    async with client_of(sandbox) as api:
        answer = await decided_after(api.get("/outbox/published"), relay.publish_pending)
        assert (answer.status_code, answer.json()) == (200, {"published": True})
        # Nothing waiting: at once.
        assert (await api.get("/outbox/published")).status_code == 200


async def test_an_outbox_not_published_in_time_is_refused_with_the_reason(
    sandbox: ServiceSandbox,
) -> None:
    await append_budgets(sandbox, range(1, 3))
    async with client_of(sandbox, max_wait=0.5) as api:
        refused = await api.get("/outbox/published")

    assert refused.status_code == 503
    assert refused.headers["content-type"] == "application/problem+json"
    assert "was not published within 0.5s" in refused.json()["detail"]


async def test_waiters_past_the_bound_are_refused_at_once(sandbox: ServiceSandbox) -> None:
    await append_budgets(sandbox, range(1, 3))
    app = outbox_app(sandbox.pool, sandbox.schema, max_wait=3.0)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://producer", timeout=30
    ) as api:
        waiting = [asyncio.create_task(api.get("/outbox/published")) for _ in range(256)]
        await asyncio.sleep(1.0)
        started = asyncio.get_running_loop().time()
        refused = await api.get("/outbox/published")
        assert asyncio.get_running_loop().time() - started < 1.0  # not kept waiting
        assert refused.status_code == 503
        assert "256 requests already wait" in refused.json()["detail"]
        assert {answer.status_code for answer in await asyncio.gather(*waiting)} == {503}


async def test_the_freshness_wait_refuses_a_decision_naming_the_producer_that_is_down(
    sandbox: ServiceSandbox, producer: AIOKafkaProducer
) -> None:
    projection = await prepare(sandbox)
    await append_budgets(sandbox, range(1, 3))
    await publish(sandbox, producer)
    nobody = ProducerOutboxes({sandbox.service: f"http://127.0.0.1:{free_port()}"})
    try:
        with pytest.raises(ProducerUnansweredError, match=f"producer {sandbox.service} did not"):
            await wait_until_caught_up(
                sandbox.pool,
                sandbox.schema,
                projection.name,
                sandbox.kafka,
                [sandbox.service],
                producers=nobody,
            )
    finally:
        await nobody.close()
