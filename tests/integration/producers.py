"""The producers' ``GET /outbox/published`` for tests that run a consumer without them: answered
from each producer's own outbox in the test's database, as the producer itself would."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager

import asyncpg
import httpx
import uvicorn
from fastapi import FastAPI

from shared.projection.freshness import ProducerOutboxes
from shared.relay.published import OutboxPublished, install_outbox_published
from shared.settings import SERVICES, DatabaseSettings


def outbox_app(pool: asyncpg.Pool, service: str, max_wait: float = 10.0) -> FastAPI:
    """The endpoint of ``service``'s outbox alone."""
    app = FastAPI()
    install_outbox_published(app, OutboxPublished(pool, service, max_wait=max_wait))
    return app


class InProcessProducers(ProducerOutboxes):
    """Producers asked without a port: each one's endpoint served in this process, on a pool
    of its own that closes with the consumer (its closers)."""

    def __init__(
        self, pool: asyncpg.Pool, services: Sequence[str], elsewhere: Mapping[str, str]
    ) -> None:
        mounts = {
            f"http://{service}": httpx.ASGITransport(app=outbox_app(pool, service))
            for service in services
        }
        urls = {service: f"http://{service}" for service in services}
        super().__init__({**urls, **elsewhere}, httpx.AsyncClient(mounts=mounts))
        self._pool = pool

    async def close(self) -> None:
        await super().close()
        await self._pool.close()


async def producers_in_process(
    database: DatabaseSettings,
    services: Sequence[str] = SERVICES,
    elsewhere: Mapping[str, str] | None = None,
) -> InProcessProducers:
    """``services`` answered in this process, the others at their address ``elsewhere``."""
    pool = await asyncpg.create_pool(database.database_url, min_size=1, max_size=4)
    return InProcessProducers(pool, services, elsewhere or {})


@asynccontextmanager
async def producers_served(
    database: DatabaseSettings, ports: Mapping[str, int]
) -> AsyncIterator[None]:
    """Each producer's endpoint on its port, for a consumer run as a process of its own."""
    pool = await asyncpg.create_pool(database.database_url, min_size=1, max_size=4)
    servers = [
        uvicorn.Server(
            uvicorn.Config(
                outbox_app(pool, service), host="127.0.0.1", port=port, log_level="warning"
            )
        )
        for service, port in ports.items()
    ]
    serving = [asyncio.create_task(server.serve()) for server in servers]
    try:
        while not all(server.started for server in servers):
            assert not any(task.done() for task in serving), "a producer's port was taken"
            await asyncio.sleep(0.05)
        yield
    finally:
        for server in servers:
            server.should_exit = True
        await asyncio.gather(*serving, return_exceptions=True)
        await pool.close()
