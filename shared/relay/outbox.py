"""The outbox relay: moves committed events from the store to the service's topic.

It reads *every row still in the outbox*, in insertion order, rather than "rows after the last
position seen": a transaction that took position 5 but committed after position 6 was published
is still in the outbox and is published on the next pass, so no event is ever skipped. A row is
deleted only after the broker acknowledged the record (acks=all, idempotent producer); a crash in
between republishes it, which consumers absorb by stream version.

One relay per service publishes at a time (a PostgreSQL advisory lock); other replicas wait as
standbys, so per-stream order on the topic is the store's order.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from shared.db import CONNECTION_LOST, DbConnection
from shared.retries import retry_until_stopped, wait_or_stop
from shared.telemetry import OUTBOX_BACKLOG, OUTBOX_PUBLISH_SECONDS
from shared.tracing import publishing

log = logging.getLogger(__name__)


def record_key(envelope: dict[str, Any]) -> bytes:
    """The contract's key: the worker for events about a worker, else the stream."""
    return str(envelope.get("worker_id") or envelope["stream_id"]).encode()


def record_headers(envelope: dict[str, Any]) -> list[tuple[str, bytes]]:
    return [
        ("event_type", str(envelope["event_type"]).encode()),
        ("schema_version", str(envelope["schema_version"]).encode()),
        ("content-type", b"application/json"),
        ("correlation_id", str(envelope["correlation_id"]).encode()),
    ]


def _span_attributes(envelope: dict[str, Any]) -> dict[str, str]:
    return {
        "berlian.event_type": str(envelope["event_type"]),
        "berlian.correlation_id": str(envelope["correlation_id"]),
        "messaging.message.id": str(envelope["event_id"]),
    }


class _LockLostError(Exception):
    """The relay's lock connection closed: the relay starts over, taking the lock again."""


class OutboxRelay:
    def __init__(
        self,
        pool: asyncpg.Pool,
        schema: str,
        topic: str,
        producer: AIOKafkaProducer,
        batch_size: int = 1000,
        poll_interval: float = 1.0,
    ) -> None:
        self._pool = pool
        self._schema = schema
        self._topic = topic
        self._producer = producer
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._wake = asyncio.Event()

    @property
    def lock_key(self) -> str:
        return f"{self._schema}.outbox-relay"

    async def publish_pending(self) -> int:
        """Publish what is in the outbox now, in batches; return how many records were sent."""
        total = 0
        while True:
            rows = await self._pool.fetch(
                f"SELECT o.position, o.traceparent, e.body FROM {self._schema}.outbox o "
                f"JOIN {self._schema}.events e USING (position) ORDER BY o.position LIMIT $1",
                self._batch_size,
            )
            if not rows:
                return total
            started = time.perf_counter()
            deliveries = []
            for row in rows:
                envelope = orjson.loads(row["body"])
                with publishing(
                    self._topic, row["traceparent"], _span_attributes(envelope)
                ) as trace:
                    deliveries.append(
                        await self._producer.send(
                            self._topic,
                            value=row["body"].encode(),
                            key=record_key(envelope),
                            headers=[*record_headers(envelope), *trace],
                        )
                    )
            await asyncio.gather(*deliveries)
            OUTBOX_PUBLISH_SECONDS.labels(self._schema).observe(time.perf_counter() - started)
            await self._mark_published([row["position"] for row in rows])
            total += len(rows)

    async def _mark_published(self, positions: list[int]) -> None:
        await self._pool.execute(
            f"DELETE FROM {self._schema}.outbox WHERE position = ANY($1::bigint[])", positions
        )

    async def backlog(self) -> int:
        return int(await self._pool.fetchval(f"SELECT count(*) FROM {self._schema}.outbox"))

    async def run(self, stop: asyncio.Event, notify_channel: str) -> None:
        """Publish until ``stop`` is set: woken by NOTIFY from appends, polling as a fallback.
        Losing the database (a restart, a failover) costs the lock and the listener: both are
        taken again once it is back."""
        await retry_until_stopped(
            stop,
            lambda: self._serve(stop, notify_channel),
            (*CONNECTION_LOST, _LockLostError),
            f"outbox relay {self._topic} lost the database",
        )

    async def _serve(self, stop: asyncio.Event, notify_channel: str) -> None:
        async with self._pool.acquire() as conn:
            while not await conn.fetchval(
                "SELECT pg_try_advisory_lock(hashtext($1))", self.lock_key
            ):
                if await wait_or_stop(stop, self._poll_interval):
                    return
            await conn.add_listener(notify_channel, self._on_notify)
            try:
                await self._publish_until(stop, conn)
                # Flush what was committed before the stop, so a clean shutdown leaves no backlog.
                await self.publish_pending()
            finally:
                if not conn.is_closed():
                    await conn.remove_listener(notify_channel, self._on_notify)
                    await conn.execute("SELECT pg_advisory_unlock(hashtext($1))", self.lock_key)

    async def _publish_until(self, stop: asyncio.Event, lock_holder: DbConnection) -> None:
        while not stop.is_set():
            self._wake.clear()
            # Broker or database away: what is in the outbox stays there; retry.
            published = await retry_until_stopped(
                stop,
                lambda: self._publish_holding(lock_holder),
                (KafkaError, *CONNECTION_LOST, asyncpg.PostgresError),
                f"outbox relay {self._topic}",
            )
            if not published:
                return
            waker = asyncio.ensure_future(self._wake.wait())
            stopper = asyncio.ensure_future(stop.wait())
            await asyncio.wait(
                {waker, stopper}, timeout=self._poll_interval, return_when=asyncio.FIRST_COMPLETED
            )
            waker.cancel()
            stopper.cancel()

    async def _publish_holding(self, lock_holder: DbConnection) -> None:
        if lock_holder.is_closed():  # the lock went with it: another relay may hold it now
            raise _LockLostError(f"the lock of {self._topic}'s relay went with its connection")
        await self.publish_pending()
        OUTBOX_BACKLOG.labels(self._schema).set(await self.backlog())

    def _on_notify(self, *_: object) -> None:
        self._wake.set()
