"""Commands safe to retry, on the real stack: every state-changing operation of the four
services (``retried_operations``), its first answer lost after the commit (the process gone
before it replied), is answered by a retry under the same Idempotency-Key with what it did and
changes nothing; the same key with another request is refused and changes nothing. Concurrent
attempts under one key have one effect; concurrent commands on one stream are decided again,
never a server error."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.billing import wiring as billing_wiring
from services.claims import wiring as claims_wiring
from services.enrolment import wiring as enrolment_wiring
from services.verification import wiring as verification_wiring
from shared.auth import AuthSettings
from shared.db import service_dsn
from shared.settings import DatabaseSettings, KafkaSettings
from tests.integration.producers import producers_in_process
from tests.integration.retried_operations import (
    OPERATIONS,
    Seeded,
    Sent,
    budget,
    keyed,
    post,
    walk,
)
from tests.integration.sandbox import isolated, running
from tests.tokens import bearer

pytestmark = pytest.mark.integration
WIRINGS: dict[str, Any] = {
    "enrolment": enrolment_wiring,
    "verification": verification_wiring,
    "billing": billing_wiring,
    "claims": claims_wiring,
}


class AnswerLostError(ConnectionError):
    pass


class LosesAnswers:
    """The service, with its answer lost on the way back: the command committed, and the
    caller heard nothing, as when the process is killed between the commit and the reply."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def lost(message: Message) -> None:
            if message["type"] == "http.response.start":
                raise AnswerLostError("the connection closed before the answer")

        await self.app(scope, receive, lost)


@dataclass
class Served:
    """A service running in the test (``world.api``), with a client that loses its answers."""

    world: Seeded
    lossy: httpx.AsyncClient

    async def events(self) -> int:
        return await self.world.count("events")


@asynccontextmanager
async def served(
    name: str, kafka_settings: KafkaSettings, database: DatabaseSettings
) -> AsyncIterator[Served]:
    kafka = await isolated(kafka_settings, database, "idempotency")
    if name == "enrolment":  # it decides on no other service's events
        process, _ = await WIRINGS[name].build(kafka, database, AuthSettings())
    else:  # the producers it asks before deciding answer here, from their outboxes
        producers = await producers_in_process(database)
        process, _ = await WIRINGS[name].build(kafka, database, AuthSettings(), producers)
    dsn = service_dsn(database.database_url, name, database.service_role_password)
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    lossy_transport = httpx.ASGITransport(app=LosesAnswers(process.app))
    try:
        async with (
            running(process) as api,
            httpx.AsyncClient(transport=lossy_transport, base_url=f"http://{name}") as lossy,
        ):
            yield Served(Seeded(name, api, pool, kafka, database), lossy)
    finally:
        await pool.close()


async def retried_safely(served: Served, sent: Sent) -> dict[str, Any]:
    """Send once with the answer lost, then retry, then retry with another body: one effect."""
    world = served.world
    before = await world.count(sent.effect)
    with pytest.raises(AnswerLostError):
        await post(served.lossy, sent.path, sent.body, sent.headers)
    after_first = await world.count(sent.effect)
    assert after_first > before, "the first attempt committed"
    retry = await post(world.api, sent.path, sent.body, sent.headers)
    assert retry.status_code == sent.answered, retry.text
    again = await post(world.api, sent.path, sent.body, sent.headers)
    assert (again.status_code, again.json()) == (retry.status_code, retry.json())
    refused = await post(world.api, sent.path, sent.other, sent.headers)
    assert refused.status_code == 422, refused.text
    assert "Idempotency-Key was already used with a different request" in refused.text
    assert await world.count(sent.effect) == after_first, "the retries changed nothing"
    return dict(retry.json())


@pytest.mark.parametrize("name", list(OPERATIONS))
async def test_every_state_changing_operation_survives_a_lost_answer_and_refuses_a_reused_key(
    name: str, kafka_settings: KafkaSettings, separate_database: DatabaseSettings
) -> None:
    async with served(name, kafka_settings, separate_database) as service:

        async def retried(sent: Sent) -> dict[str, Any]:
            return await retried_safely(service, sent)

        await walk(service.world, OPERATIONS[name], retried)


@pytest.fixture
async def billing(
    kafka_settings: KafkaSettings, separate_database: DatabaseSettings
) -> AsyncIterator[Served]:
    async with served("billing", kafka_settings, separate_database) as service:
        yield service


async def test_a_money_operation_without_a_key_is_refused(billing: Served) -> None:
    api = billing.world.api
    missing = await api.post("/budgets", json=budget(5), headers=bearer("city_admin"))
    assert missing.status_code == 422
    assert "Idempotency-Key" in missing.text
    assert await billing.events() == 0


async def test_concurrent_attempts_under_one_key_have_one_effect(billing: Served) -> None:
    key = keyed("city_admin", str(uuid.uuid4()))
    before = await billing.events()
    answers = await asyncio.gather(
        *(billing.world.api.post("/budgets", json=budget(7_000), headers=key) for _ in range(4))
    )
    assert [a.status_code for a in answers] == [201] * 4
    assert len({a.text for a in answers}) == 1
    assert await billing.events() == before + 1


async def test_concurrent_commands_on_one_stream_are_decided_again(billing: Served) -> None:
    # Every allocation of 2025 is on one stream: concurrent ones overtake each other.
    answers = await asyncio.gather(
        *(
            billing.world.api.post(
                "/budgets", json=budget(1_000 + n), headers=keyed("city_admin", str(uuid.uuid4()))
            )
            for n in range(6)
        )
    )
    codes = [a.status_code for a in answers]
    assert all(code in (201, 409) for code in codes), [a.text for a in answers]
    versions = sorted(a.json()["stream_version"] for a in answers if a.status_code == 201)
    assert versions == list(range(1, len(versions) + 1))
    assert await billing.events() == len(versions)
