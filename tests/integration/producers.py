"""The producers' ``GET /outbox/published`` for tests that run a consumer in this process
without them: answered from each producer's own outbox in the test's database, as the producer
itself would (deploy/local/outboxes.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TypeVar

import asyncpg
import httpx

from deploy.local.outboxes import outbox_app
from shared.projection.freshness import ProducerOutboxes
from shared.settings import SERVICES, DatabaseSettings

T = TypeVar("T")


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


async def decided_after(deciding: Awaitable[T], relay: Callable[[], Awaitable[object]]) -> T:
    """What ``deciding`` answers, checked to be still waiting while the producer's committed
    events sit in its outbox, until ``relay`` publishes them."""
    waiting = asyncio.ensure_future(deciding)
    await asyncio.sleep(1.5)
    assert not waiting.done(), "decided before the producer's committed events were published"
    await relay()
    return await waiting
