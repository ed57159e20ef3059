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
is dead-lettered and the partition moves on. Dead letters keep each stream's order: once an
event of a stream is dead-lettered, the stream is parked for this projection and its later
events are dead-lettered behind it (parked), so nothing is applied on a gap; other streams go
on. ``redrive`` applies a parked sequence in order and ``skip`` passes over one letter on an
operator's word. The live runner and replay both write through this class, so a replayed
projection is built by exactly the code that built the live one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, Protocol, TypeAlias, runtime_checkable

import asyncpg
import orjson
from aiokafka import ConsumerRecord, TopicPartition

from shared.catalogue import EventCatalogue
from shared.db import CONNECTION_LOST, DbConnection
from shared.deadletters import (
    MAX_NOTE_CHARS,
    MAX_OPERATOR_CHARS,
    DeadLetter,
    Resolution,
    waiting_sequence,
)
from shared.eventstore.migrations import Migration
from shared.eventstore.store import ConcurrencyError
from shared.logs import correlated
from shared.projection.changes import RowChange, collapsed, execute_changes
from shared.projection.decode import (
    ConsumedEvent,
    StreamPosition,
    UnprocessableRecordError,
    decode,
)
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
# A partition batch's records as decoded, by offset: shared by the projections of one rebuild
# that read the same topic, so each record is parsed and its hash checked once.
Decoded: TypeAlias = "dict[int, ConsumedEvent | _Failure]"


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


@dataclass(frozen=True)
class _Failure:
    record: Record
    reason: str
    stream: StreamPosition | None = None  # None: it names no stream it can be trusted about
    parked: bool = False  # held behind an earlier failure of its stream, not failed itself


@dataclass
class _Outcome:
    changes: list[RowChange] = field(default_factory=list)
    dead: list[_Failure] = field(default_factory=list)
    versions: dict[str, int] = field(default_factory=dict)
    applied: int = 0
    duplicates: int = 0  # stream versions already applied


RedriveOutcome = Literal["applied", "moved_on", "not_read", "fails", "not_waiting"]


@dataclass(frozen=True)
class RedriveStep:
    """What re-driving one letter did; ``detail`` says it in words for the operator."""

    letter_id: int
    outcome: RedriveOutcome
    detail: str


class SkipRefusedError(Exception):
    """The letter cannot be skipped (resolved already, or not the head of its sequence)."""


class _BatchRefusedError(Exception):
    """A batch's changes failed in the database: redo it one event at a time."""


class ProjectionWriter:
    def __init__(
        self,
        pool: asyncpg.Pool,
        schema: str,
        projection: Projection,
        catalogue: EventCatalogue,
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
            name.encode() for name in catalogue.types if name not in projection.event_types
        }
        self._catalogue = catalogue
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
        self,
        tp: TopicPartition,
        records: list[Record],
        strict: bool = True,
        decoded: Decoded | None = None,
    ) -> int | Reread:
        """Apply one partition batch; return the stored next offset.

        ``strict``: a batch starting after the stored position is not applied (``Reread``);
        when it comes again from that very position, the gap is real (control records).
        ``decoded``: the batch's records already decoded, filled in as they are.
        """
        memo: Decoded = {} if decoded is None else decoded
        return await retry_forever(
            lambda: self._write_batch(tp, records, strict, memo),
            TRANSIENT_ERRORS,
            f"projection {self.consumer_name}: transient failure on {tp}",
        )

    async def _write_batch(
        self, tp: TopicPartition, records: list[Record], strict: bool, decoded: Decoded
    ) -> int | Reread:
        try:
            return await self._write_once(tp, records, strict, decoded, isolate=False)
        except _BatchRefusedError:
            return await self._write_once(tp, records, strict, decoded, isolate=True)

    async def _write_once(
        self,
        tp: TopicPartition,
        records: list[Record],
        strict: bool,
        decoded: Decoded,
        isolate: bool,
    ) -> int | Reread:
        async with self._pool.acquire() as conn, conn.transaction():
            stored = await self._lock_position(conn, tp)
            if strict and records[0].offset > stored:
                return Reread(stored)
            fresh = [r for r in records if r.offset >= stored]
            if not fresh:
                return stored
            outcome = await self._apply(conn, fresh, isolate, parked=set(), decoded=decoded)
            await self._record(conn, outcome)
            next_offset = int(fresh[-1].offset) + 1
            await conn.execute(
                f"UPDATE {self._schema}.projection_positions SET next_offset = $4 "
                "WHERE projection = $1 AND topic = $2 AND partition = $3",
                self.projection.name,
                tp.topic,
                tp.partition,
                next_offset,
            )
        self._count(outcome)
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

    async def redrive(self, letter: DeadLetter) -> list[RedriveStep]:
        """Apply ``letter``'s waiting sequence again, in order, once its cause is fixed.

        For a letter of a parked stream that is every waiting letter of the stream, from the
        oldest: each is applied, or found already applied (the stream moved on, e.g. by a
        rebuild), or not read by this projection; the first that still fails stops the re-drive
        and keeps its place (with the new reason), so the ones behind it stay parked. Only a
        letter whose effects were committed is reported "applied".
        """
        steps: list[RedriveStep] = []
        applied: list[_Outcome] = []
        async with self._pool.acquire() as conn, conn.transaction():
            # The partition's position row, locked as every batch of the runner locks it: the
            # runner neither parks behind a sequence being emptied nor reads it half-done.
            await self._lock_position(conn, TopicPartition(letter.topic, letter.partition))
            sequence = await waiting_sequence(conn, self._schema, letter)
            if not sequence:
                current = await self._letter_state(conn, letter.id)
                return [RedriveStep(letter.id, "not_waiting", current)]
            for waiting in sequence:
                step = await self._redrive_one(conn, waiting, applied)
                steps.append(step)
                if step.outcome == "fails":
                    break
        for outcome in applied:
            self._count(outcome)
        return steps

    async def _redrive_one(
        self, conn: DbConnection, letter: DeadLetter, applied: list[_Outcome]
    ) -> RedriveStep:
        if letter.stream_id is not None and letter.stream_version is not None:
            known = (await self._applied_versions(conn, {letter.stream_id})).get(letter.stream_id)
            if known is not None and letter.stream_version <= known:
                detail = (
                    f"not applied: stream {letter.stream_id} had moved on to version {known}, "
                    f"past this letter's version {letter.stream_version}"
                )
                await self._resolve(conn, letter.id, "moved_on", None, detail)
                return RedriveStep(letter.id, "moved_on", detail)
        outcome = await self._apply(conn, [_record_of(letter)], isolate=True, parked=None)
        if outcome.dead:
            reason = outcome.dead[0].reason
            # failed_at stays: the letter's age is how long its stream has been held.
            await conn.execute(
                f"UPDATE {self._schema}.dead_letters SET reason = $2, parked = false WHERE id = $1",
                letter.id,
                reason,
            )
            return RedriveStep(letter.id, "fails", f"still fails: {reason}")
        if outcome.applied:
            await self._record(conn, outcome)
            applied.append(outcome)
            await self._resolve(conn, letter.id, "applied", None, None)
            detail = "applied"
            if letter.stream_id is not None:
                detail += f" (stream {letter.stream_id} v{letter.stream_version})"
            return RedriveStep(letter.id, "applied", detail)
        if outcome.duplicates:
            detail = "not applied: its stream had already moved on past this version"
            await self._resolve(conn, letter.id, "moved_on", None, detail)
            return RedriveStep(letter.id, "moved_on", detail)
        detail = "not applied: the projection does not read this event (or not in its history)"
        await self._resolve(conn, letter.id, "not_read", None, detail)
        return RedriveStep(letter.id, "not_read", detail)

    async def skip(self, letter: DeadLetter, operator: str, note: str) -> None:
        """Pass over ``letter`` on an operator's word, recorded with who and why.

        Only the oldest waiting letter of a stream may be skipped (the order is kept); its
        version counts as passed for the stream, so a republished copy is not applied later.
        The letters parked behind it stay until re-driven.
        """
        operator, note = operator.strip(), note.strip()
        if not operator or len(operator) > MAX_OPERATOR_CHARS:
            raise SkipRefusedError(f"the operator must be 1 to {MAX_OPERATOR_CHARS} characters")
        if not note or len(note) > MAX_NOTE_CHARS:
            raise SkipRefusedError(f"the reason must be 1 to {MAX_NOTE_CHARS} characters")
        async with self._pool.acquire() as conn, conn.transaction():
            await self._lock_position(conn, TopicPartition(letter.topic, letter.partition))
            sequence = await waiting_sequence(conn, self._schema, letter)
            if letter.id not in {waiting.id for waiting in sequence}:
                raise SkipRefusedError(await self._letter_state(conn, letter.id))
            head = sequence[0]
            if head.id != letter.id:
                raise SkipRefusedError(
                    f"dead letter {letter.id} is parked behind dead letter {head.id} "
                    f"(stream {head.stream_id} v{head.stream_version}): skip or re-drive that "
                    "one first, so the stream's order is kept"
                )
            if letter.stream_id is not None and letter.stream_version is not None:
                await self._record_versions(conn, {letter.stream_id: letter.stream_version})
            await self._resolve(conn, letter.id, "skipped", operator, note)

    async def _resolve(
        self,
        conn: DbConnection,
        letter_id: int,
        resolution: Resolution,
        operator: str | None,
        note: str | None,
    ) -> None:
        await conn.execute(
            f"UPDATE {self._schema}.dead_letters SET resolution = $2, resolved_at = now(), "
            "resolved_by = $3, resolution_note = $4 WHERE id = $1",
            letter_id,
            resolution,
            operator,
            note,
        )

    async def _letter_state(self, conn: DbConnection, letter_id: int) -> str:
        row = await conn.fetchrow(
            f"SELECT resolution, resolved_at, resolved_by FROM {self._schema}.dead_letters "
            "WHERE id = $1",
            letter_id,
        )
        if row is None:
            return f"there is no dead letter {letter_id}"
        if row["resolution"] is None:
            return f"dead letter {letter_id} is waiting"
        by = f" by {row['resolved_by']}" if row["resolved_by"] else ""
        return (
            f"dead letter {letter_id} is no longer waiting: {row['resolution']}{by} at "
            f"{row['resolved_at'].isoformat(timespec='seconds')}"
        )

    async def _apply(
        self,
        conn: DbConnection,
        records: list[Record],
        isolate: bool,
        parked: set[str] | None,
        decoded: Decoded | None = None,
    ) -> _Outcome:
        """The batch's effects, in record order. ``parked``: the streams held back, found in
        the dead letters and grown by this batch's failures; None when re-driving a letter."""
        outcome = _Outcome()
        memo: Decoded = {} if decoded is None else decoded
        read = [(r, self._decoded(r, memo)) for r in records if not self._not_read(r)]
        streams = {stream for _, item in read if (stream := _stream_of(item)) is not None}
        known = await self._applied_versions(conn, streams)
        if parked is not None:
            parked |= await self._parked_streams(conn, streams)

        def applied_before(stream: str) -> int:
            return outcome.versions.get(stream, known.get(stream, 0))

        for record, item in read:
            if isinstance(item, _Failure):
                if item.stream is not None and item.stream.stream_version <= applied_before(
                    item.stream.stream_id
                ):
                    outcome.duplicates += 1  # a copy of a version applied already
                    continue
                outcome.dead.append(item)
                if item.stream is not None and parked is not None:
                    parked.add(item.stream.stream_id)
                continue
            if self._include is not None and not self._include(item):
                continue  # outside the history asked for (as known at / as true on)
            stream, version = item.envelope.stream_id, item.envelope.stream_version
            if version <= applied_before(stream):
                outcome.duplicates += 1  # republished by the relay: already applied
                continue
            position = StreamPosition(stream, version)
            if parked is not None and stream in parked:
                reason = f"parked: stream {stream} waits behind an earlier dead letter"
                outcome.dead.append(_Failure(record, reason, position, parked=True))
                continue
            with self._handling(record, item):
                failure = await self._apply_event(conn, item, outcome, isolate)
            if failure is not None:
                outcome.dead.append(_Failure(record, failure, position))
                if parked is not None:
                    parked.add(stream)
                continue
            outcome.versions[stream] = version
            outcome.applied += 1
        if not isolate:
            try:
                async with conn.transaction():
                    await execute_changes(conn, self._schema, collapsed(outcome.changes))
            except TRANSIENT_ERRORS:
                raise
            except asyncpg.PostgresError as error:
                raise _BatchRefusedError from error
        return outcome

    def _decoded(self, record: Record, memo: Decoded) -> ConsumedEvent | _Failure:
        item = memo.get(record.offset)
        if item is None:
            try:
                owner = self._owners[record.topic]
                item = decode(
                    record.value,
                    record.topic,
                    record.partition,
                    record.offset,
                    owner,
                    self._catalogue,
                )
            except UnprocessableRecordError as rejected:
                item = _Failure(record, str(rejected), rejected.stream)
            memo[record.offset] = item
        return item

    async def _apply_event(
        self, conn: DbConnection, event: ConsumedEvent, outcome: _Outcome, isolate: bool
    ) -> str | None:
        """Apply one event (now, or into the batch's changes); None, or why it cannot."""
        try:
            changes = list(self.projection.apply(event))
        except Exception as error:  # a rule that cannot apply is dead-lettered
            return f"projection {self.projection.name} failed: {error!r}"
        if not (isolate or self._reactor is not None):
            outcome.changes.extend(changes)
            return None
        # Each event in its own savepoint: a refusal undoes only that event's effects.
        try:
            async with conn.transaction():
                await execute_changes(conn, self._schema, changes)
                if self._reactor is not None:
                    await self._reactor.react(conn, event)
        except TRANSIENT_ERRORS:
            raise
        except asyncpg.PostgresError as error:
            return f"database refused the changes: {error}"
        except Exception as error:  # a reaction that cannot happen is dead-lettered
            return f"reaction {self.projection.name} failed: {error!r}"
        return None

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

    async def _parked_streams(self, conn: DbConnection, streams: set[str]) -> set[str]:
        rows = await conn.fetch(
            f"SELECT DISTINCT d.stream_id FROM {self._schema}.dead_letters d "
            "JOIN unnest($2::text[]) AS batch(stream_id) USING (stream_id) "
            "WHERE d.consumer = $1 AND d.resolved_at IS NULL",
            self.consumer_name,
            list(streams),
        )
        return {r["stream_id"] for r in rows}

    async def _record_versions(self, conn: DbConnection, versions: Mapping[str, int]) -> None:
        await conn.execute(
            f"INSERT INTO {self._schema}.projection_streams "
            "SELECT $1, * FROM unnest($2::text[], $3::integer[]) "
            "ON CONFLICT (projection, stream_id) DO UPDATE "
            "SET version = greatest(projection_streams.version, EXCLUDED.version)",
            self.projection.name,
            list(versions),
            list(versions.values()),
        )

    async def _record(self, conn: DbConnection, outcome: _Outcome) -> None:
        """The outcome's stream versions and dead letters, in the batch's transaction; counted
        by ``_count`` only once that transaction has committed."""
        if outcome.versions:
            await self._record_versions(conn, outcome.versions)
        if outcome.dead:
            now = datetime.now(UTC)
            # DO NOTHING: a record, or a stream version, already waiting is not parked twice.
            await conn.executemany(
                f"INSERT INTO {self._schema}.dead_letters (consumer, topic, partition, "
                "kafka_offset, key, value, headers, reason, failed_at, stream_id, "
                "stream_version, parked) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) "
                "ON CONFLICT DO NOTHING",
                [
                    (
                        self.consumer_name,
                        failure.record.topic,
                        failure.record.partition,
                        failure.record.offset,
                        failure.record.key,
                        failure.record.value,
                        orjson.dumps(
                            [
                                [k, v.decode(errors="replace")]
                                for k, v in failure.record.headers or ()
                            ]
                        ).decode(),
                        failure.reason,
                        now,
                        failure.stream.stream_id if failure.stream else None,
                        failure.stream.stream_version if failure.stream else None,
                        failure.parked,
                    )
                    for failure in outcome.dead
                ],
            )

    def _count(self, outcome: _Outcome) -> None:
        """Count (and log) a committed outcome: a batch whose commit failed is written again,
        and counting it before the commit counted it once per attempt."""
        self.applied += outcome.applied
        self.dead_lettered += len(outcome.dead)
        EVENTS_CONSUMED.labels(self.consumer_name).inc(outcome.applied)
        for failure in outcome.dead:
            DEAD_LETTERS.labels(self.consumer_name, reason_category(failure.reason)).inc()
            log.warning(
                "projection %s dead-lettered %s[%d]@%d: %s",
                self.consumer_name,
                failure.record.topic,
                failure.record.partition,
                failure.record.offset,
                failure.reason,
            )


def _stream_of(item: ConsumedEvent | _Failure) -> str | None:
    if isinstance(item, _Failure):
        return item.stream.stream_id if item.stream else None
    return item.envelope.stream_id


def _record_of(letter: DeadLetter) -> Record:
    """The original record of a dead letter, as the consumer had read it."""
    return ConsumerRecord(
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
