"""Money operations retried after the service process was killed between the commit and the
answer, on the real stack: billing runs as a process of its own behind a relay of bytes that,
on the first byte of the answer (written only after the commit), kills the process with SIGKILL
and closes the caller's connection unanswered. A new process answers the retry under the same
key with the committed result and records nothing more; another body under the key is refused."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest

from services.catalog import migrate_all
from shared.settings import DatabaseSettings, KafkaSettings
from shared.topics import ensure_topics
from tests.integration.programme_world import PORTS, environment, log_of, start_service, stop
from tests.integration.test_idempotency import keyed, money_operations_walk

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@dataclass
class KilledOnAnswer:
    """A relay of bytes to the service that kills ``process`` as its answer begins."""

    process: subprocess.Popen[bytes] | None = None
    kills: int = 0

    async def serve(self, client: asyncio.StreamReader, answer: asyncio.StreamWriter) -> None:
        upstream, request = await asyncio.open_connection("127.0.0.1", PORTS["billing"])

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
class Billing:
    relay_url: str
    relay: KilledOnAnswer
    env: dict[str, str]
    pool: asyncpg.Pool
    kafka: KafkaSettings
    database: DatabaseSettings

    def start(self) -> None:
        self.relay.process = start_service("billing", self.env)

    async def ready(self) -> None:
        assert self.relay.process is not None
        async with httpx.AsyncClient() as client:
            for _ in range(240):
                assert self.relay.process.poll() is None, log_of("billing").read_text()[-3000:]
                try:
                    url = f"http://127.0.0.1:{PORTS['billing']}/health/ready"
                    if (await client.get(url)).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.5)
        raise AssertionError("billing never became ready")

    async def events(self) -> int:
        return int(await self.pool.fetchval("SELECT count(*) FROM billing.events"))


@pytest.fixture
async def billing(
    kafka_settings: KafkaSettings, separate_database: DatabaseSettings
) -> AsyncIterator[Billing]:
    kafka = kafka_settings.model_copy(
        update={"topic_prefix": f"{kafka_settings.topic_prefix}killed-{uuid.uuid4().hex[:6]}."}
    )
    await ensure_topics(kafka)
    await migrate_all(separate_database)
    relay = KilledOnAnswer()
    server = await asyncio.start_server(relay.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pool = await asyncpg.create_pool(separate_database.database_url, min_size=1, max_size=2)
    world = Billing(
        f"http://127.0.0.1:{port}",
        relay,
        environment(kafka, separate_database),
        pool,
        kafka,
        separate_database,
    )
    world.start()
    try:
        await world.ready()
        yield world
    finally:
        server.close()
        if relay.process is not None:
            stop([relay.process])
        await pool.close()


async def killed_then_retried(
    billing: Billing, path: str, body: dict[str, Any], other: dict[str, Any], role: str
) -> dict[str, Any]:
    """Sent once through the relay (the process killed as it answers), retried on a new
    process, then sent with another body: one effect, one answer."""
    headers = keyed(role, str(uuid.uuid4()))
    before = await billing.events()
    async with httpx.AsyncClient(base_url=billing.relay_url, timeout=60) as relayed:
        with pytest.raises(httpx.TransportError):
            await relayed.post(path, json=body, headers=headers)
    assert billing.relay.kills == 1, "the process was killed as it answered"
    billing.relay.kills = 0
    committed = await billing.events()
    assert committed > before, "the killed attempt had committed"
    billing.start()
    await billing.ready()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{PORTS['billing']}") as api:
        retry = await api.post(path, json=body, headers=headers)
        assert retry.status_code == 201, retry.text
        refused = await api.post(path, json=other, headers=headers)
        assert refused.status_code == 422, refused.text
    assert await billing.events() == committed, "the retries recorded nothing more"
    return dict(retry.json())


async def test_money_operations_retried_after_the_process_was_killed_before_its_answer(
    billing: Billing,
) -> None:
    async def retried(
        path: str, body: dict[str, Any], other: dict[str, Any], role: str
    ) -> dict[str, Any]:
        return await killed_then_retried(billing, path, body, other, role)

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{PORTS['billing']}") as api:
        await money_operations_walk(api, billing.kafka, billing.database, retried)
