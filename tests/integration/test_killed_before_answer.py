"""Money operations retried after the service process was killed between the commit and the
answer, on the real stack: the service runs as a process of its own behind a relay of bytes
that, on the first byte of the answer (written only after the commit), kills the process with
SIGKILL and closes the caller's connection unanswered. A new process answers the retry under the
same key with the committed result and records nothing more; another body under the key is
refused. Billing's budgets, runs and payments, and claims' filings, instalments and payments."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest

from deploy.local.outboxes import outboxes_served
from services.catalog import migrate_all
from shared.settings import DatabaseSettings, KafkaSettings
from shared.topics import ensure_topics
from tests.integration.programme_world import PORTS, environment, log_of, start_service, stop
from tests.integration.retried_operations import OPERATIONS, Seeded, Sent, post, walk

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@dataclass
class KilledOnAnswer:
    """A relay of bytes to the service on ``port`` that kills ``process`` as its answer
    begins."""

    port: int
    process: subprocess.Popen[bytes] | None = None
    kills: int = 0

    async def serve(self, client: asyncio.StreamReader, answer: asyncio.StreamWriter) -> None:
        upstream, request = await asyncio.open_connection("127.0.0.1", self.port)

        async def forward_request() -> None:
            while data := await client.read(65536):
                request.write(data)
                await request.drain()

        forwarding = asyncio.create_task(forward_request())
        try:
            if await upstream.read(1) and self.process is not None:
                # The first byte of the answer: the command has committed; the caller never
                # hears of it.
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait()
                self.kills += 1
        finally:
            forwarding.cancel()
            request.close()
            answer.close()


@dataclass
class Killable:
    """The service as a process, reached directly (``world.api``) or through the relay that
    kills it (``relay_url``)."""

    world: Seeded
    relay_url: str
    relay: KilledOnAnswer
    env: dict[str, str]

    @property
    def name(self) -> str:
        return self.world.name

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{PORTS[self.name]}"

    def start(self) -> None:
        self.relay.process = start_service(self.name, self.env)

    async def ready(self) -> None:
        assert self.relay.process is not None
        async with httpx.AsyncClient() as client:
            for _ in range(240):
                assert self.relay.process.poll() is None, log_of(self.name).read_text()[-3000:]
                try:
                    if (await client.get(f"{self.url}/health/ready")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.5)
        raise AssertionError(f"{self.name} never became ready")


@asynccontextmanager
async def killable(
    name: str, kafka_settings: KafkaSettings, database: DatabaseSettings
) -> AsyncIterator[Killable]:
    kafka = kafka_settings.model_copy(
        update={"topic_prefix": f"{kafka_settings.topic_prefix}killed-{uuid.uuid4().hex[:6]}."}
    )
    await ensure_topics(kafka)
    await migrate_all(database)
    relay = KilledOnAnswer(PORTS[name])
    server = await asyncio.start_server(relay.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pool = await asyncpg.create_pool(database.database_url, min_size=1, max_size=2)
    api = httpx.AsyncClient(base_url=f"http://127.0.0.1:{PORTS[name]}", timeout=60)
    world = Seeded(name, api, pool, kafka, database)
    service = Killable(world, f"http://127.0.0.1:{port}", relay, environment(kafka, database))
    # The services whose events it decides on are not running: their outboxes answer for them.
    others = {other: p for other, p in PORTS.items() if other != name}
    try:
        async with outboxes_served(database.database_url, others):
            service.start()
            await service.ready()
            yield service
    finally:
        server.close()
        if relay.process is not None:
            stop([relay.process])
        await api.aclose()
        await pool.close()


async def killed_then_retried(service: Killable, sent: Sent) -> dict[str, Any]:
    """Sent once through the relay (the process killed as it answers), retried on a new
    process, then sent with another body: one effect, one answer."""
    world = service.world
    before = await world.count(sent.effect)
    async with httpx.AsyncClient(base_url=service.relay_url, timeout=60) as relayed:
        with pytest.raises(httpx.TransportError):
            await post(relayed, sent.path, sent.body, sent.headers)
    assert service.relay.kills == 1, "the process was killed as it answered"
    service.relay.kills = 0
    committed = await world.count(sent.effect)
    assert committed > before, "the killed attempt had committed"
    service.start()
    await service.ready()
    retry = await post(world.api, sent.path, sent.body, sent.headers)
    assert retry.status_code == sent.answered, retry.text
    refused = await post(world.api, sent.path, sent.other, sent.headers)
    assert refused.status_code == 422, refused.text
    assert await world.count(sent.effect) == committed, "the retries recorded nothing more"
    return dict(retry.json())


@pytest.mark.parametrize("name", ["billing", "claims"])
async def test_money_operations_retried_after_the_process_was_killed_before_its_answer(
    name: str, kafka_settings: KafkaSettings, separate_database: DatabaseSettings
) -> None:
    async with killable(name, kafka_settings, separate_database) as service:

        async def retried(sent: Sent) -> dict[str, Any]:
            return await killed_then_retried(service, sent)

        await walk(service.world, OPERATIONS[name], retried)
