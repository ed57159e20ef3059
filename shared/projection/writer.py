"""Writing consumed records into a projection's tables with an exactly-once effect.

For every partition batch, one database transaction:
  1. locks the projection's stored position for the partition (``FOR UPDATE``);
  2. drops records below it (already applied, e.g. by a consumer that held the partition
     before a rebalance), so a stale consumer can never move progress backwards or apply twice;
  3. drops republished duplicates (stream version already applied);
  4. applies the projection's row changes and dead-letters what cannot be processed;
  5. stores the next offset.

Transient failures (database unreachable, deadlock, serialisation) are retried with jittered
backoff (:mod:`shared.retries`) and never dead-lettered; an event that can never be processed
is dead-lettered and the partition moves on. The live runner and replay both write through
this class, so a replayed projection is built by exactly the code that built the live one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol, TypeAlias, runtime_checkable

import asyncpg
import orjson
from aiokafka import ConsumerRecord, TopicPartition

from shared.db import CONNECTION_LOST, DbConnection
from shared.deadletters import DeadLetter
from shared.events.registry import EVENT_TYPES
from shared.eventstore.migrations import Migration
from shared.eventstore.store import ConcurrencyError
from shared.logs import correlated
from shared.projection.changes import RowChange, execute_changes
from shared.projection.decode import ConsumedEvent, UnprocessableRecordError, decode
from shared.retries import retry_forever
from shared.telemetry import DEAD_LETTERS, EVENTS_CONSUMED, reason_category
from shared.tracing import consuming

log = logging.getLogger(__name__)

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    ConcurrencyError,  # a reaction raced another writer of its stream: read again, retry
    *CONNECTION_LOST,
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
)

Record: TypeAlias = "ConsumerRecord[bytes, bytes]"
EventFilter = Callable[[ConsumedEvent], bool]


@runtime_checkable
class Projection(Protocol):
    """A read model: its name, the services whose topics it reads, its tables, its rules."""

    @property
    def name(self) -> str: ...

    @property
    def sources(self) -> Sequence[str]: ...

    @property
    def event_types(self) -> frozenset[str]:
        """The event types it reads; records of other known types are passed over unread."""
        ...

    @property
    def migrations(self) -> Sequence[Migration]: ...

    @property
    def tables(self) -> Sequence[str]:
        """The tables its migrations create: what a rebuild replaces."""
        ...

    def apply(self, event: ConsumedEvent) -> Sequence[RowChange]:
        """The row changes this event causes: a pure function, no I/O."""
        ...


@runtime_checkable
class Reactor(Projection, Protocol):
    """A consumer that also acts: it appends its own service's events in reaction.

    ``react`` runs inside the transaction that records the consumed position, so the reaction
    (an append to the service's own store, with its outbox rows) happens exactly once.
    """

    async def react(self, conn: DbConnection, event: ConsumedEvent) -> None: ...


@dataclass(frozen=True)
class Reread:
    """The records start after the stored position: read again from ``offset``."""

    offset: int


@dataclass
class _Outcome:
    changes: list[RowChange] = field(default_factory=list)
    dead: list[tuple[Record, str]] = field(default_factory=list)
    versions: dict[str, int] = field(default_factory=dict)
    applied: int = 0


class _BatchRefusedError(Exception):
    """A batch's changes failed in the database: redo it one event at a time."""


class ProjectionWriter:
    def __init__(
        self,
        pool: asyncpg.Pool,
        schema: str,
        projection: Projection,
        topic_owners: Mapping[str, str],
        consumer_name: str,
        include: EventFilter | None = None,
        traced: bool = True,
    ) -> None:
        self._pool = pool
        self._schema = schema
        self.projection = projection
        # Checked once: a runtime protocol check costs a scan of the class on every call.
        self._reactor = projection if isinstance(projection, Reactor) else None
        # Known types it does not read, as the relay's event_type header carries them. Records
        # without the header, or of unknown types, are decoded (and dead-lettered) as usual.
        self._passed_over = {
            name.encode() for name in EVENT_TYPES if name not in projection.event_types
        }
        self._owners = dict(topic_owners)
        self.consumer_name = consumer_name
        self._include = include
        self._traced = traced
        self.applied = 0
        self.dead_lettered = 0

    async def stored_positions(self) -> dict[TopicPartition, int]:
        rows = await self._pool.fetch(
            f"SELECT topic, partition, next_offset FROM {self._schema}.projection_positions "
            "WHERE projection = $1",
            self.projection.name,
        )
        return {TopicPartition(r["topic"], r["partition"]): r["next_offset"] for r in rows}

    async def write(
        self, tp: TopicPartition, records: list[Record], strict: bool = True
    ) -> int | Reread:
        """Apply one partition batch; return the stored next offset.

        ``strict``: a batch starting after the stored position is not applied (``Reread``);
        when it comes again from that very position, the gap is real (control records).
        """
        return await retry_forever(
            lambda: self._write_batch(tp, records, strict),
            TRANSIENT_ERRORS,
            f"projection {self.consumer_name}: transient failure on {tp}",
        )

    async def _write_batch(
        self, tp: TopicPartition, records: list[Record], strict: bool
    ) -> int | Reread:
        try:
            return await self._write_once(tp, records, strict, isolate=False)
        except _BatchRefusedError:
            return await self._write_once(tp, records, strict, isolate=True)

    async def _write_once(
        self, tp: TopicPartition, records: list[Record], strict: bool, isolate: bool
    ) -> int | Reread:
        async with self._pool.acquire() as conn, conn.transaction():
            stored = await self._lock_position(conn, tp)
            if strict and records[0].offset > stored:
                return Reread(stored)
            fresh = [r for r in records if r.offset >= stored]
            if not fresh:
                return stored
            await self._apply(conn, fresh, isolate)
            next_offset = int(fresh[-1].offset) + 1
            await conn.execute(
                f"UPDATE {self._schema}.projection_positions SET next_offset = $4 "
                "WHERE projection = $1 AND topic = $2 AND partition = $3",
                self.projection.name,
                tp.topic,
                tp.partition,
                next_offset,
            )
        return next_offset

    async def _lock_position(self, conn: DbConnection, tp: TopicPartition) -> int:
        # One statement that creates the row if needed, locks it, and returns the latest
        # committed position even when another transaction changed it while this one waited.
        return int(
            await conn.fetchval(
                f"INSERT INTO {self._schema}.projection_positions VALUES ($1, $2, $3, 0) "
                "ON CONFLICT (projection, topic, partition) "
                "DO UPDATE SET next_offset = projection_positions.next_offset "
                "RETURNING next_offset",
                self.projection.name,
                tp.topic,
                tp.partition,
            )
        )

    async def redrive(self, letter: DeadLetter) -> str | None:
        """Apply a dead letter's original record again, once its cause is fixed.

        Returns None when it applied (the letter is marked re-driven), else why it still fails.
        """
        record: Record = ConsumerRecord(
            topic=letter.topic,
            partition=letter.partition,
            offset=letter.offset,
            timestamp=0,
            timestamp_type=0,
            key=letter.key,
            value=letter.value,
            checksum=None,
            serialized_key_size=len(letter.key or b""),
            serialized_value_size=len(letter.value or b""),
            headers=tuple((k, v.encode()) for k, v in letter.headers),
        )
        async with self._pool.acquire() as conn, conn.transaction():
            outcome = await self._apply(conn, [record], isolate=True)
            if outcome.dead:
                return outcome.dead[0][1]
            await conn.execute(
                f"UPDATE {self._schema}.dead_letters SET redriven_at = now() WHERE id = $1",
                letter.id,
            )
        return None

    async def _apply(self, conn: DbConnection, records: list[Record], isolate: bool) -> _Outcome:
        outcome = _Outcome()
        events: list[tuple[Record, ConsumedEvent]] = []
        for record in records:
            if self._not_read(record):
                continue
            try:
                owner = self._owners[record.topic]
                event = decode(record.value, record.topic, record.partition, record.offset, owner)
            except UnprocessableRecordError as rejected:
                outcome.dead.append((record, str(rejected)))
            else:
                events.append((record, event))
        known = await self._applied_versions(conn, {e.envelope.stream_id for _, e in events})
        for record, event in events:
            if self._include is not None and not self._include(event):
                continue  # outside the history asked for (as known at / as true on)
            stream, version = event.envelope.stream_id, event.envelope.stream_version
            if version <= outcome.versions.get(stream, known.get(stream, 0)):
                continue  # republished by the relay: already applied
            with self._handling(record, event):
                refused = await self._apply_one(conn, record, event, isolate, outcome)
            if refused:
                continue
            outcome.versions[stream] = version
            outcome.applied += 1
        if not isolate:
            try:
                async with conn.transaction():
                    await execute_changes(conn, self._schema, outcome.changes)
            except TRANSIENT_ERRORS:
                raise
            except asyncpg.PostgresError as error:
                raise _BatchRefusedError from error
        await self._record(conn, outcome)
        return outcome

    async def _apply_one(
        self,
        conn: DbConnection,
        record: Record,
        event: ConsumedEvent,
        isolate: bool,
        outcome: _Outcome,
    ) -> bool:
        """Apply one event (and its reaction); True when it was dead-lettered instead."""
        try:
            changes = list(self.projection.apply(event))
        except Exception as error:  # a rule that cannot apply is dead-lettered
            outcome.dead.append((record, f"projection {self.projection.name} failed: {error!r}"))
            return True
        if isolate or self._reactor is not None:
            # Each event in its own savepoint: a refusal undoes only that event's effects.
            try:
                async with conn.transaction():
                    await execute_changes(conn, self._schema, changes)
                    if self._reactor is not None:
                        await self._reactor.react(conn, event)
            except TRANSIENT_ERRORS:
                raise
            except asyncpg.PostgresError as error:
                outcome.dead.append((record, f"database refused the changes: {error}"))
                return True
            except Exception as error:  # a reaction that cannot happen is dead-lettered
                outcome.dead.append((record, f"reaction {self.projection.name} failed: {error!r}"))
                return True
        else:
            outcome.changes.extend(changes)
        return False

    def _handling(self, record: Record, event: ConsumedEvent) -> ExitStack[bool | None]:
        """A live consumer applies each record in a span continuing the record's trace, with its
        correlation id on the log lines; a replay adds nothing to the traces of long ago."""
        handling = ExitStack()
        if self._traced:
            handling.enter_context(
                consuming(
                    self.consumer_name,
                    record.topic,
                    record.partition,
                    record.offset,
                    record.headers,
                )
            )
            handling.enter_context(correlated(event.envelope.correlation_id))
        return handling

    def _not_read(self, record: Record) -> bool:
        for key, value in record.headers or ():
            if key == "event_type":
                return value in self._passed_over
        return False

    async def _applied_versions(self, conn: DbConnection, streams: set[str]) -> dict[str, int]:
        # A join, not "= ANY": on a table still growing (a rebuild) the planner has no
        # statistics, and ANY over a batch's streams became a scan per stream (190 ms a batch).
        rows = await conn.fetch(
            f"SELECT s.stream_id, s.version FROM {self._schema}.projection_streams s "
            "JOIN unnest($2::text[]) AS batch(stream_id) USING (stream_id) "
            "WHERE s.projection = $1",
            self.projection.name,
            list(streams),
        )
        return {r["stream_id"]: r["version"] for r in rows}

    async def _record(self, conn: DbConnection, outcome: _Outcome) -> None:
        if outcome.versions:
            await conn.execute(
                f"INSERT INTO {self._schema}.projection_streams "
                "SELECT $1, * FROM unnest($2::text[], $3::integer[]) "
                "ON CONFLICT (projection, stream_id) DO UPDATE SET version = EXCLUDED.version",
                self.projection.name,
                list(outcome.versions),
                list(outcome.versions.values()),
            )
        if outcome.dead:
            now = datetime.now(UTC)
            await conn.executemany(
                f"INSERT INTO {self._schema}.dead_letters (consumer, topic, partition, "
                "kafka_offset, key, value, headers, reason, failed_at) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
                "ON CONFLICT (consumer, topic, partition, kafka_offset) DO NOTHING",
                [
                    (
                        self.consumer_name,
                        record.topic,
                        record.partition,
                        record.offset,
                        record.key,
                        record.value,
                        orjson.dumps(
                            [[k, v.decode(errors="replace")] for k, v in record.headers or ()]
                        ).decode(),
                        reason,
                        now,
                    )
                    for record, reason in outcome.dead
                ],
            )
            for record, reason in outcome.dead:
                log.warning(
                    "projection %s dead-lettered %s[%d]@%d: %s",
                    self.consumer_name,
                    record.topic,
                    record.partition,
                    record.offset,
                    reason,
                )
        self.applied += outcome.applied
        self.dead_lettered += len(outcome.dead)
        EVENTS_CONSUMED.labels(self.consumer_name).inc(outcome.applied)
        for _, reason in outcome.dead:
            DEAD_LETTERS.labels(self.consumer_name, reason_category(reason)).inc()
