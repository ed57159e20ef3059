"""A fresh service schema with the platform's tables, and a fresh topic."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
from aiokafka.admin import NewTopic

from services.catalog import migrate_all
from shared.eventstore.migrations import PLATFORM, migrate
from shared.runtime import ServiceProcess
from shared.settings import DatabaseSettings, KafkaSettings
from shared.topics import EVENT_TOPIC_CONFIG, ensure_topics


@dataclass(frozen=True)
class ServiceSandbox:
    """One service's world for a test: a schema of its own and topics under a prefix of its own."""

    service: str
    schema: str
    pool: asyncpg.Pool
    kafka: KafkaSettings

    @property
    def topic(self) -> str:
        return self.kafka.events_topic(self.service)


async def make_sandbox(
    database: DatabaseSettings, kafka: KafkaSettings, service: str = "billing"
) -> ServiceSandbox:
    unique = uuid.uuid4().hex[:8]
    schema = f"{service}_{unique}"
    kafka = kafka.model_copy(update={"topic_prefix": f"{kafka.topic_prefix}{unique}."})
    pool = await asyncpg.create_pool(database.database_url, min_size=1, max_size=8)
    async with pool.acquire() as conn:
        await conn.execute(f"CREATE SCHEMA {schema}")
        await migrate(conn, schema, PLATFORM)
    sandbox = ServiceSandbox(service, schema, pool, kafka)
    await ensure_topics(
        kafka,
        [
            NewTopic(
                name=t, num_partitions=3, replication_factor=1, topic_configs=EVENT_TOPIC_CONFIG
            )
            for t in (sandbox.topic, kafka.dead_letter_topic(service))
        ],
    )
    return sandbox


BackgroundJob = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


@asynccontextmanager
async def running(
    process: ServiceProcess, jobs: Sequence[BackgroundJob] = ()
) -> AsyncIterator[httpx.AsyncClient]:
    """A built service's relay and consumers running (and the background ``jobs`` a test
    names, such as its import jobs), and a client for its API (no port)."""
    stop = asyncio.Event()
    tasks = [asyncio.create_task(process.relay.run(stop, process.notify_channel))]
    tasks += [asyncio.create_task(r.run(stop)) for r in process.runners]
    tasks += [asyncio.create_task(job(stop)) for job in jobs]
    transport = httpx.ASGITransport(app=process.app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url=f"http://{process.name}") as api:
            yield api
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        await process.close()


async def isolated(kafka: KafkaSettings, database: DatabaseSettings, label: str) -> KafkaSettings:
    """Topics of the test's own under a fresh prefix, and every service's tables migrated."""
    own = kafka.model_copy(
        update={"topic_prefix": f"{kafka.topic_prefix}{label}-{uuid.uuid4().hex[:6]}."}
    )
    await ensure_topics(own)
    await migrate_all(database)
    return own


async def eventually(check: Callable[[], Awaitable[bool]]) -> None:
    """Until the projections show what was written (the bound only ends a broken run)."""
    for _ in range(2400):  # two minutes on a loaded machine
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the projections never showed it")
