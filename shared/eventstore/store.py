"""Appending to and reading from a service's event store.

An append checks the stream's expected version (optimistic concurrency), seals each event into
the stream's hash chain, and writes the events, their outbox rows and the command's result in one
transaction: either all of it is recorded or none of it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson

from shared.db import DbConnection
from shared.decisions import Decided
from shared.events.envelope import GENESIS_HASH
from shared.events.hashing import compute_hash
from shared.settings import KafkaSettings
from shared.telemetry import EVENTS_APPENDED
from shared.tracing import current_traceparent


class IdempotencyKeyReusedError(Exception):
    """A key already used for a different request: the first stands, this one is refused."""

    def __init__(self) -> None:
        super().__init__(
            "this Idempotency-Key was already used with a different request; "
            "use a new key for a new request"
        )


class ConcurrencyError(Exception):
    """The stream moved on since the caller read it: re-read, decide again, retry."""

    def __init__(self, stream_id: str, expected: int, actual: int) -> None:
        super().__init__(
            f"stream {stream_id} is at version {actual}, not the expected {expected}: "
            "another command changed it first"
        )
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual


class EnvelopeTooLargeError(ValueError):
    """An event whose envelope could not be published (over the topic's maximum message size):
    refused before anything is stored."""

    def __init__(self, event_type: str, size: int, limit: int, field: str) -> None:
        super().__init__(
            f"the {event_type} event would be {size:,} bytes, over the {limit:,} bytes a record "
            f"of its topic may hold (its largest part is {field!r}); nothing was recorded"
        )
        self.field = field


@dataclass(frozen=True)
class NewEvent:
    """An event decided by the domain, not yet in the store (personal fields already sealed)."""

    event_type: str
    data: Mapping[str, Any]
    occurred_at: datetime
    worker_id: uuid.UUID | None = None
    schema_version: int = 1
    policy_version: str | None = None


@dataclass(frozen=True)
class CommandContext:
    """Who asked, in which business flow, and the key that makes a retry harmless."""

    actor_id: str
    actor_role: str
    correlation_id: uuid.UUID
    causation_id: uuid.UUID | None = None
    idempotency_key: str | None = None
    fingerprint: str | None = None  # of the request, so a key reused for another is refused


def reaction_key(cause: uuid.UUID | str) -> str:
    """The idempotency key of a reaction: one per causing event, so it happens once."""
    return f"reaction:{cause}"


@dataclass(frozen=True)
class AppendResult:
    stream_id: str
    first_version: int
    last_version: int
    event_ids: tuple[uuid.UUID, ...]
    duplicate: bool = False  # True when the command had been handled before: nothing appended
    response: Any = None  # the answer given the first time, recorded with its events
    envelopes: tuple[dict[str, Any], ...] = field(default=(), repr=False)  # as appended now


@dataclass(frozen=True)
class StoredEvent:
    position: int
    envelope: dict[str, Any] = field(repr=False)
    body: str = field(repr=False)


def outbox_channel(schema: str) -> str:
    """The PostgreSQL NOTIFY channel an append signals, so the relay wakes without polling."""
    return f"{schema}_outbox"


def rfc3339(moment: datetime) -> str:
    """UTC instants as RFC 3339 with a Z; other offsets kept as given (business time)."""
    if moment.tzinfo is None:
        raise ValueError("timestamps must carry a UTC offset")
    text = moment.isoformat(timespec="microseconds")
    return text.replace("+00:00", "Z")


class EventStore:
    """A service's store. An envelope larger than ``max_envelope_bytes`` (by default the one
    the Kafka settings derive from ``KAFKA_MAX_MESSAGE_BYTES``) is refused before the append:
    stored, it could never be published, and would hold up its topic."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        schema: str,
        producer: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        new_id: Callable[[], uuid.UUID] = uuid.uuid4,
        max_envelope_bytes: int | None = None,
    ) -> None:
        self._pool = pool
        self._schema = schema
        self._producer = producer
        self._clock = clock
        self._new_id = new_id
        self._max_envelope_bytes = (
            KafkaSettings().max_envelope_bytes if max_envelope_bytes is None else max_envelope_bytes
        )

    @property
    def schema(self) -> str:
        return self._schema

    @property
    def notify_channel(self) -> str:
        return outbox_channel(self._schema)

    async def find_command(
        self, idempotency_key: str, fingerprint: str | None = None, conn: DbConnection | None = None
    ) -> AppendResult | None:
        """The result of a command already handled under this key, if any; a key recorded for
        a request of another fingerprint is refused."""
        row = await (conn or self._pool).fetchrow(
            f"SELECT {COMMAND_COLUMNS} FROM {self._schema}.commands "
            "WHERE idempotency_key = $1 AND first_version > 0",
            idempotency_key,
        )
        return None if row is None else _handled_before(row, fingerprint)

    async def record_response(
        self, conn: DbConnection, idempotency_key: str, response: Any
    ) -> None:
        """Keep the answer to a command with its events, for a retry to receive it again."""
        await conn.execute(
            f"UPDATE {self._schema}.commands SET response = $2 WHERE idempotency_key = $1",
            idempotency_key,
            orjson.dumps(response).decode(),
        )

    async def append(
        self,
        stream_id: str,
        expected_version: int | None,
        events: Sequence[NewEvent],
        context: CommandContext,
    ) -> AppendResult:
        """Append ``events`` after ``expected_version`` (None: wherever the stream ends)."""
        async with self._pool.acquire() as conn, conn.transaction():
            return await self.append_within(conn, stream_id, expected_version, events, context)

    async def append_within(
        self,
        conn: DbConnection,
        stream_id: str,
        expected_version: int | None,
        events: Sequence[NewEvent],
        context: CommandContext,
    ) -> AppendResult:
        """The append, inside a transaction the caller holds (and commits or rolls back)."""
        if not events:
            raise ValueError("an append needs at least one event")
        if context.idempotency_key is not None:
            first = await self._claim_command(conn, context, stream_id)
            if first is not None:
                return first
        actual, prev_hash = await self._lock_stream(conn, stream_id)
        if expected_version is not None and actual != expected_version:
            raise ConcurrencyError(stream_id, expected_version, actual)
        recorded_at = rfc3339(self._clock())
        rows = []
        for offset, event in enumerate(events, start=1):
            envelope = self._envelope(stream_id, actual + offset, event, context, recorded_at)
            envelope["prev_hash"] = prev_hash
            envelope["hash"] = prev_hash = compute_hash(envelope)
            rows.append(envelope)
        last_version = actual + len(events)
        await self._insert(conn, rows)
        await conn.execute(
            f"INSERT INTO {self._schema}.streams (stream_id, version, last_hash) "
            "VALUES ($1, $2, $3) ON CONFLICT (stream_id) "
            "DO UPDATE SET version = EXCLUDED.version, last_hash = EXCLUDED.last_hash",
            stream_id,
            last_version,
            prev_hash,
        )
        event_ids = tuple(uuid.UUID(row["event_id"]) for row in rows)
        if context.idempotency_key is not None:
            await conn.execute(
                f"UPDATE {self._schema}.commands SET event_ids = $2, first_version = $3, "
                "last_version = $4 WHERE idempotency_key = $1",
                context.idempotency_key,
                list(event_ids),
                actual + 1,
                last_version,
            )
        await conn.execute("SELECT pg_notify($1, '')", self.notify_channel)
        for event in events:
            EVENTS_APPENDED.labels(self._producer, event.event_type).inc()
        return AppendResult(stream_id, actual + 1, last_version, event_ids, envelopes=tuple(rows))

    async def _claim_command(
        self, conn: DbConnection, context: CommandContext, stream_id: str
    ) -> AppendResult | None:
        # A concurrent first attempt holds the key's row lock: this insert waits for it to
        # commit (then the key is taken: return its result) or roll back (then it is ours).
        claimed = await conn.fetchval(
            f"INSERT INTO {self._schema}.commands (idempotency_key, stream_id, event_ids, "
            "first_version, last_version, recorded_at, fingerprint) "
            "VALUES ($1, $2, '{}', 0, 0, now(), $3) "
            "ON CONFLICT (idempotency_key) DO NOTHING RETURNING true",
            context.idempotency_key,
            stream_id,
            context.fingerprint,
        )
        if claimed:
            return None
        first = await conn.fetchrow(
            f"SELECT {COMMAND_COLUMNS} FROM {self._schema}.commands WHERE idempotency_key = $1",
            context.idempotency_key,
        )
        assert first is not None  # the conflicting row is committed and never deleted
        return _handled_before(first, context.fingerprint)

    async def _lock_stream(self, conn: DbConnection, stream_id: str) -> tuple[int, str]:
        row = await conn.fetchrow(
            f"SELECT version, last_hash FROM {self._schema}.streams "
            "WHERE stream_id = $1 FOR UPDATE",
            stream_id,
        )
        if row is not None:
            return int(row["version"]), str(row["last_hash"])
        # A new stream: claim its row now, so a concurrent creator waits and then conflicts.
        created = await conn.fetchval(
            f"INSERT INTO {self._schema}.streams (stream_id, version, last_hash) "
            "VALUES ($1, 0, $2) ON CONFLICT (stream_id) DO NOTHING RETURNING true",
            stream_id,
            GENESIS_HASH,
        )
        if not created:
            current = await conn.fetchval(
                f"SELECT version FROM {self._schema}.streams WHERE stream_id = $1", stream_id
            )
            raise ConcurrencyError(stream_id, 0, int(current))
        return 0, GENESIS_HASH

    def _envelope(
        self,
        stream_id: str,
        version: int,
        event: NewEvent,
        context: CommandContext,
        recorded_at: str,
    ) -> dict[str, Any]:
        return {
            "event_id": str(self._new_id()),
            "event_type": event.event_type,
            "schema_version": event.schema_version,
            "stream_id": stream_id,
            "stream_version": version,
            "worker_id": str(event.worker_id) if event.worker_id else None,
            "occurred_at": rfc3339(event.occurred_at),
            "recorded_at": recorded_at,
            "producer": self._producer,
            "actor": {"id": context.actor_id, "role": context.actor_role},
            "correlation_id": str(context.correlation_id),
            "causation_id": str(context.causation_id) if context.causation_id else None,
            "policy_version": event.policy_version,
            "data": dict(event.data),
        }

    async def _insert(self, conn: DbConnection, envelopes: list[dict[str, Any]]) -> None:
        bodies = [orjson.dumps(e).decode() for e in envelopes]
        for envelope, body in zip(envelopes, bodies, strict=True):
            self._refuse_unpublishable(envelope, body)
        positions = await insert_events(conn, self._schema, envelopes, bodies, "RETURNING position")
        traceparent = current_traceparent()
        await conn.executemany(
            f"INSERT INTO {self._schema}.outbox (position, traceparent) VALUES ($1, $2)",
            [(row["position"], traceparent) for row in positions],
        )

    async def read_about(
        self, worker_id: uuid.UUID, event_types: Sequence[str], conn: DbConnection | None = None
    ) -> list[StoredEvent]:
        """A worker's events of these types across all their streams, in the order appended."""
        rows = await (conn or self._pool).fetch(
            f"SELECT position, body FROM {self._schema}.events WHERE worker_id = $1 "
            "AND event_type = any($2::text[]) ORDER BY position",
            worker_id,
            list(event_types),
        )
        return [StoredEvent(r["position"], orjson.loads(r["body"]), r["body"]) for r in rows]

    def _refuse_unpublishable(self, envelope: Mapping[str, Any], body: str) -> None:
        size = len(body.encode())
        if size > self._max_envelope_bytes:
            data = envelope["data"]
            largest = max(data, key=lambda name: len(orjson.dumps(data[name])), default="data")
            raise EnvelopeTooLargeError(
                envelope["event_type"], size, self._max_envelope_bytes, largest
            )

    async def read_stream(
        self, stream_id: str, conn: DbConnection | None = None
    ) -> list[StoredEvent]:
        """The stream's events; through ``conn`` to see what its open transaction appended."""
        rows = await (conn or self._pool).fetch(
            f"SELECT position, body FROM {self._schema}.events WHERE stream_id = $1 "
            "ORDER BY stream_version",
            stream_id,
        )
        return [StoredEvent(r["position"], orjson.loads(r["body"]), r["body"]) for r in rows]


COMMAND_COLUMNS = "stream_id, event_ids, first_version, last_version, fingerprint, response"


def _handled_before(row: asyncpg.Record, fingerprint: str | None) -> AppendResult:
    if fingerprint is not None and row["fingerprint"] not in (None, fingerprint):
        raise IdempotencyKeyReusedError()
    return AppendResult(
        row["stream_id"],
        row["first_version"],
        row["last_version"],
        tuple(row["event_ids"]),
        duplicate=True,
        response=None if row["response"] is None else orjson.loads(row["response"]),
    )


def to_new_events(decided: Sequence[Decided], worker_id: uuid.UUID | None) -> list[NewEvent]:
    return [
        NewEvent(
            event_type=d.event_type,
            data=d.data.model_dump(mode="json"),
            occurred_at=d.occurred_at,
            worker_id=d.worker_id or worker_id,
            schema_version=d.schema_version,
            policy_version=d.policy_version,
        )
        for d in decided
    ]


async def insert_events(
    conn: DbConnection,
    schema: str,
    envelopes: Sequence[Mapping[str, Any]],
    bodies: Sequence[str],
    tail: str,
) -> list[asyncpg.Record]:
    """One statement for many events; ``bodies`` are the envelopes exactly as published."""
    return await conn.fetch(
        f"INSERT INTO {schema}.events (event_id, stream_id, stream_version, event_type, "
        "schema_version, worker_id, recorded_at, hash, body) "
        "SELECT * FROM unnest($1::uuid[], $2::text[], $3::int[], $4::text[], $5::int[], "
        f"$6::uuid[], $7::timestamptz[], $8::text[], $9::text[]) {tail}",
        [e["event_id"] for e in envelopes],
        [e["stream_id"] for e in envelopes],
        [e["stream_version"] for e in envelopes],
        [e["event_type"] for e in envelopes],
        [e["schema_version"] for e in envelopes],
        [e["worker_id"] for e in envelopes],
        [datetime.fromisoformat(e["recorded_at"]) for e in envelopes],
        [e["hash"] for e in envelopes],
        list(bodies),
    )
