"""The producers' ``GET /outbox/published`` for tests that run a consumer in this process
without them: answered from each producer's own outbox in the test's database, as the producer
itself would (deploy/local/outboxes.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import asyncpg
import httpx

from deploy.local.outboxes import outbox_app
from shared.projection.freshness import ProducerOutboxes
from shared.settings import SERVICES, DatabaseSettings


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
