"""``GET /outbox/published``: whether what a producer had committed is on its topic.

A consumer that decides on a producer's events first asks it this (shared/projection/
freshness.py): an event committed in the producer's outbox but not yet relayed is on no topic,
so no high-water mark shows it. The answer is 200 once every outbox row committed before the
request arrived has been published (the relay deletes a row once the broker acknowledged it),
and 503 when that takes longer than the bound or too many requests already wait.

"Committed before the request arrived" is read as the highest position in the outbox then: a
row below it that commits later is waited for too, which only errs on the side of waiting. A
parked row (refused by the broker for good) has left the outbox and is never published: it does
not hold the answer, it waits for an operator (docs/runbook.md, BerlianOutboxParked).

Every waiter reads the same shared reading of the outbox, taken at most once per interval, so
the database sees a bounded load however many requests wait.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from shared.http import refusal
from shared.retries import poll_until_empty

PUBLISHED_PATH = "/outbox/published"


class OutboxNotPublishedError(RuntimeError):
    """The outbox was not published within the bound, or too many requests were waiting."""


class OutboxPublished:
    """Waits, bounded, until what a service's outbox held when asked has been published."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        schema: str,
        max_wait: float = 10.0,
        max_waiters: int = 256,
        reading_interval: float = 0.05,
    ) -> None:
        self._pool = pool
        self._schema = schema
        self.max_wait = max_wait
        self.max_waiters = max_waiters
        self._interval = reading_interval
        self._waiters = 0
        self._reading = asyncio.Lock()
        self._read_at = float("-inf")
        self._oldest: int | None = None

    async def wait(self) -> None:
        """Return once every row now in the outbox is published; raise past either bound."""
        if self._waiters >= self.max_waiters:
            raise OutboxNotPublishedError(
                f"{self.max_waiters} requests already wait for the {self._schema} outbox"
            )
        self._waiters += 1
        try:
            newest = await self._pool.fetchval(f"SELECT max(position) FROM {self._schema}.outbox")
            if newest is None:
                return

            async def still_waiting() -> dict[str, int]:
                oldest = await self._oldest_waiting()
                return {} if oldest is None or oldest > newest else {"from": oldest}

            if await poll_until_empty(still_waiting, within=self.max_wait):
                raise OutboxNotPublishedError(
                    f"the {self._schema} outbox was not published within {self.max_wait:g}s "
                    "(its relay is behind or the broker is away)"
                )
        finally:
            self._waiters -= 1

    async def _oldest_waiting(self) -> int | None:
        async with self._reading:
            if time.monotonic() - self._read_at >= self._interval:
                self._oldest = await self._pool.fetchval(
                    f"SELECT min(position) FROM {self._schema}.outbox"
                )
                self._read_at = time.monotonic()
            return self._oldest


def install_outbox_published(app: FastAPI, published: OutboxPublished) -> None:
    """The endpoint, without a token like the health checks: it tells only "published or not",
    nothing of any event (docs/security.md)."""

    @app.get(PUBLISHED_PATH, include_in_schema=False)
    async def outbox_published() -> JSONResponse:
        try:
            await published.wait()
        except OutboxNotPublishedError as error:
            return refusal(503, str(error), {"Retry-After": "2"})
        return JSONResponse({"published": True})
