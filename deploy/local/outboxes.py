"""A producer's ``GET /outbox/published`` answered without the producer running: for a bench or
a test that runs a consumer alone and writes the producer's events itself. The answer comes from
the producer's own outbox in the database, by the code the producer itself serves."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import asyncpg
import uvicorn
from fastapi import FastAPI

from shared.relay.published import OutboxPublished, install_outbox_published


def outbox_app(pool: asyncpg.Pool, service: str, max_wait: float = 10.0) -> FastAPI:
    """The endpoint of ``service``'s outbox alone (its schema on ``pool``)."""
    app = FastAPI()
    install_outbox_published(app, OutboxPublished(pool, service, max_wait=max_wait))
    return app


@asynccontextmanager
async def outboxes_served(
    database_url: str, ports: Mapping[str, int]
) -> AsyncIterator[dict[str, str]]:
    """Each named producer's endpoint on its port on 127.0.0.1, until the block ends; their
    base URLs by name."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
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
            if any(task.done() for task in serving):
                raise RuntimeError(f"a producer's port of {dict(ports)} could not be served")
            await asyncio.sleep(0.05)
        yield {service: f"http://127.0.0.1:{port}" for service, port in ports.items()}
    finally:
        for server in servers:
            server.should_exit = True
        await asyncio.gather(*serving, return_exceptions=True)
        await pool.close()
