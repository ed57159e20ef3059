"""The outbox relay: moves committed events from the store to the service's topic.

It reads *every row still in the outbox*, in insertion order, rather than "rows after the last
position seen": a transaction that took position 5 but committed after position 6 was published
is still in the outbox and is published on the next pass, so no event is ever skipped. A row is
deleted only after the broker acknowledged the record (acks=all, idempotent producer); a crash in
between republishes it, which consumers absorb by stream version.

One relay per service publishes at a time (a PostgreSQL advisory lock); other replicas wait as
standbys, so per-stream order on the topic is the store's order.

A record the broker refuses for good (too large, invalid) never holds up the others: it is
moved to ``outbox_parked`` with the reason, and so is every later event of its stream (published
without it, the stream would have a gap), while the rest goes on. The backlog and parked gauges
are set from the tables every cycle, whether the cycle published or not.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    CorruptRecordException,
    InvalidTimestampError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
)

from shared.db import CONNECTION_LOST, DbConnection
from shared.retries import retry_until_stopped, wait_or_stop
from shared.telemetry import OUTBOX_BACKLOG, OUTBOX_PARKED, OUTBOX_PUBLISH_SECONDS
from shared.tracing import publishing

log = logging.getLogger(__name__)

# Refusals of the record itself, the same on every retry; anything else (the broker away, a
# leader moving, credentials) is a condition of the moment, retried with every record kept.
REFUSED_FOR_GOOD: tuple[type[Exception], ...] = (
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    CorruptRecordException,
    InvalidTimestampError,
)
BEHIND_PARKED = "behind an earlier parked event of its stream"
DATABASE_AWAY: tuple[type[Exception], ...] = (*CONNECTION_LOST, asyncpg.PostgresError)


class ProducerOutOfSequenceError(RuntimeError):
    """The broker refused a record after the producer gave it a sequence number: the idempotent
    producer cannot go on with that partition, and no new producer can be made here."""


def record_key(envelope: dict[str, Any]) -> bytes:
    """The contract's key: the worker for events about a worker, else the stream."""
    return str(envelope.get("worker_id") or envelope["stream_id"]).encode()


def record_headers(envelope: dict[str, Any]) -> list[tuple[str, bytes]]:
    """The record's headers, all taken from the envelope (none is part of the hashed value).

    Berlian's own (``event_type``, ``schema_version``, ``correlation_id``) and the CloudEvents
    1.0 Kafka binding's binary mode: the value is the event's data (the whole envelope), the
    ``ce_*`` headers its attributes, so a CloudEvents SDK reads the record as it is.
    """
    return [
        ("event_type", str(envelope["event_type"]).encode()),
        ("schema_version", str(envelope["schema_version"]).encode()),
        ("content-type", b"application/json"),
        ("correlation_id", str(envelope["correlation_id"]).encode()),
        ("ce_specversion", b"1.0"),
        ("ce_id", str(envelope["event_id"]).encode()),
        ("ce_type", str(envelope["event_type"]).encode()),
        ("ce_source", str(envelope["producer"]).encode()),
        ("ce_subject", str(envelope["stream_id"]).encode()),
        ("ce_time", str(envelope["occurred_at"]).encode()),
    ]


def _span_attributes(envelope: dict[str, Any]) -> dict[str, str]:
    return {
        "berlian.event_type": str(envelope["event_type"]),
        "berlian.correlation_id": str(envelope["correlation_id"]),
        "messaging.message.id": str(envelope["event_id"]),
    }


class _LockLostError(Exception):
    """The relay's lock connection closed: the relay starts over, taking the lock again."""


# The batch is taken from the outbox first, then joined to its events. Left to itself the
# planner walks the events in position order from the first ever recorded and probes the outbox
# for each, so a batch cost a scan of everything published before it: 3.8 s a batch behind
# 750,000 published events, where this takes 8 ms.
NEXT_BATCH = (
    "WITH next AS MATERIALIZED (SELECT position, traceparent FROM {schema}.outbox "
    "ORDER BY position LIMIT $1) "
    "SELECT n.position, n.traceparent, e.stream_id, e.body "
    "FROM next n JOIN {schema}.events e USING (position) ORDER BY n.position"
)


class OutboxRelay:
    def __init__(
        self,
        pool: asyncpg.Pool,
        schema: str,
        topic: str,
        producer: AIOKafkaProducer,
        batch_size: int = 1000,
        poll_interval: float = 1.0,
        new_producer: Callable[[], AIOKafkaProducer] | None = None,
    ) -> None:
        self._pool = pool
        self._schema = schema
        self._topic = topic
        self._producer = producer
        self._new_producer = new_producer
        self._batch_size = batch_size
        self._next_batch = NEXT_BATCH.format(schema=schema)
        self._poll_interval = poll_interval
        self._wake = asyncio.Event()

    @property
    def producer(self) -> AIOKafkaProducer:
        """The producer in use: a new one after the broker refused a record (see _renew)."""
        return self._producer

    @property
    def lock_key(self) -> str:
        return f"{self._schema}.outbox-relay"

    async def publish_pending(self) -> int:
        """Publish what is in the outbox now, in batches; return how many records were sent."""
        total = 0
        while True:
            await self._park_behind_parked()
            rows = await self._pool.fetch(self._next_batch, self._batch_size)
            if not rows:
                return total
            started = time.perf_counter()
            total += await self._publish_batch(rows)
            OUTBOX_PUBLISH_SECONDS.labels(self._schema).observe(time.perf_counter() - started)

    async def _publish_batch(self, rows: Sequence[asyncpg.Record]) -> int:
        """Send the rows, park those refused for good, delete those acknowledged in order up to
        the first other failure (raised once the rest is recorded); return how many went out."""
        parked: dict[int, str] = {}
        refused_streams: set[str] = set()
        deliveries: list[tuple[int, asyncio.Future[Any]]] = []
        for row in rows:
            if row["stream_id"] in refused_streams:
                parked[row["position"]] = BEHIND_PARKED
                continue
            envelope = orjson.loads(row["body"])
            try:
                with publishing(
                    self._topic, row["traceparent"], _span_attributes(envelope)
                ) as trace:
                    delivery = await self._producer.send(
                        self._topic,
                        value=row["body"].encode(),
                        key=record_key(envelope),
                        headers=[*record_headers(envelope), *trace],
                    )
            except REFUSED_FOR_GOOD as error:  # the producer's own check, before sending
                parked[row["position"]] = _reason(error)
                refused_streams.add(row["stream_id"])
                continue
            deliveries.append((row["position"], delivery))
        results = await asyncio.gather(*(d for _, d in deliveries), return_exceptions=True)
        published: list[int] = []
        failure: BaseException | None = None
        refused_by_broker = False
        for (position, _), result in zip(deliveries, results, strict=True):
            if isinstance(result, REFUSED_FOR_GOOD):
                parked[position] = _reason(result)
                refused_by_broker = True
            elif isinstance(result, BaseException):
                failure = failure or result
            elif failure is None:  # after a failure, later records go again, in order
                published.append(position)
        await self._park(parked)
        await self._mark_published(published)
        if refused_by_broker:
            await self._renew()
        if failure is not None:
            raise failure
        return len(published)

    async def _park(self, reasons: dict[int, str]) -> None:
        if not reasons:
            return
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                f"DELETE FROM {self._schema}.outbox WHERE position = ANY($1::bigint[])",
                list(reasons),
            )
            await conn.executemany(
                f"INSERT INTO {self._schema}.outbox_parked (position, reason) VALUES ($1, $2) "
                "ON CONFLICT (position) DO NOTHING",
                list(reasons.items()),
            )
        for position, reason in reasons.items():
            log.error(
                "outbox relay %s parked the event at position %d: %s",
                self._topic,
                position,
                reason,
            )

    async def _park_behind_parked(self) -> None:
        """Events of a stream with a parked event wait with it: their stream would have a gap."""
        async with self._pool.acquire() as conn, conn.transaction():
            behind = await conn.fetch(
                f"DELETE FROM {self._schema}.outbox o USING {self._schema}.events e "
                "WHERE e.position = o.position AND e.stream_id IN "
                f"(SELECT p_e.stream_id FROM {self._schema}.outbox_parked p "
                f"JOIN {self._schema}.events p_e USING (position)) RETURNING o.position"
            )
            if behind:
                await conn.executemany(
                    f"INSERT INTO {self._schema}.outbox_parked (position, reason) "
                    "VALUES ($1, $2) ON CONFLICT (position) DO NOTHING",
                    [(row["position"], BEHIND_PARKED) for row in behind],
                )

    async def _renew(self) -> None:
        """A new producer (a new producer id, sequences from zero): after the broker refused a
        record it had numbered, aiokafka's idempotent producer fails every later record of that
        partition as out of sequence."""
        if self._new_producer is None:
            raise ProducerOutOfSequenceError(
                f"the broker refused a record of {self._topic}; the relay needs a new producer"
            )
        await self._producer.stop()
        self._producer = self._new_producer()
        await self._producer.start()

    async def _mark_published(self, positions: list[int]) -> None:
        await self._pool.execute(
            f"DELETE FROM {self._schema}.outbox WHERE position = ANY($1::bigint[])", positions
        )

    async def backlog(self) -> int:
        """Events committed and not on the topic: waiting in the outbox, or parked."""
        waiting, parked = await self.counts()
        return waiting + parked

    async def counts(self) -> tuple[int, int]:
        """(waiting in the outbox, parked)."""
        row = await self._pool.fetchrow(
            f"SELECT (SELECT count(*) FROM {self._schema}.outbox) AS waiting, "
            f"(SELECT count(*) FROM {self._schema}.outbox_parked) AS parked"
        )
        assert row is not None
        return int(row["waiting"]), int(row["parked"])

    async def _measure(self) -> None:
        try:
            waiting, parked = await self.counts()
        except DATABASE_AWAY:
            return  # the database is away: the gauges keep their last reading
        OUTBOX_BACKLOG.labels(self._schema).set(waiting + parked)
        OUTBOX_PARKED.labels(self._schema).set(parked)

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
                if _still_held(conn):
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
        if not _still_held(lock_holder):  # the lock went with it: another relay may hold it now
            raise _LockLostError(f"the lock of {self._topic}'s relay went with its connection")
        try:
            await self.publish_pending()
        finally:  # every cycle, whether it published or not
            await self._measure()

    def _on_notify(self, *_: object) -> None:
        self._wake.set()


def _still_held(conn: DbConnection) -> bool:
    """Whether the connection that took the lock is still open and still this relay's. After a
    database restart the pool replaces a broken connection and detaches its proxy, which then
    answers every call, ``is_closed`` included, with InterfaceError: retrying on that proxy
    would never publish again, so it counts as the lock lost and the relay takes it anew."""
    try:
        return not conn.is_closed()
    except asyncpg.InterfaceError:
        return False


def _reason(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"
