"""Appending to and reading from a service's event store.

An append checks the stream's expected version (optimistic concurrency), seals each event into
the stream's hash chain, and writes the events, their outbox rows and the command's result in one
transaction: either all of it is recorded or none of it. The writing is one call of the
schema's ``append_command`` function (migration ``0009_append_command``); a command whose
streams the caller read is sealed ahead and costs that one call alone.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
from pydantic import BaseModel

from shared.db import DbConnection
from shared.decisions import Decided
from shared.envelope import GENESIS_HASH
from shared.hashing import compute_hash
from shared.settings import KafkaSettings
from shared.telemetry import EVENTS_APPENDED
from shared.tracing import current_traceparent

# The class of the advisory locks that make concurrent first attempts of one request wait.
REQUEST_KEY_LOCKS = 0x42524551


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
    # The data before it was dumped, for the inline projections of its own append.
    decided: BaseModel | None = field(default=None, compare=False, repr=False)


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
class StreamEvents:
    """Events for one stream, after ``expected_version`` (None: wherever the stream ends).
    ``read_hash``, the hash of the stream's last event at ``expected_version`` (the genesis
    hash for none), is known to a caller that read the stream: its events are then sealed
    before anything is locked, and the append checks the head is still there."""

    stream_id: str
    expected_version: int | None
    events: Sequence[NewEvent]
    read_hash: str | None = None


@dataclass(frozen=True)
class CommandAppend:
    """What one command appends: its own stream first (the versions its idempotency record
    keeps), then the other streams its decision writes; ``respond`` gives the answer recorded
    with its events."""

    streams: Sequence[StreamEvents]
    context: CommandContext
    respond: Callable[[AppendResult], Any] | None = None


@dataclass(frozen=True)
class Answered:
    """A batched request's whole answer: the one recorded under its key when ``replayed``."""

    response: Any
    replayed: bool = False


# A command's outcome in a batch: its result, or the error that refused it alone.
AppendOutcome = AppendResult | ConcurrencyError | IdempotencyKeyReusedError | EnvelopeTooLargeError


@dataclass(frozen=True)
class _Head:
    version: int
    last_hash: str


@dataclass
class _Batch:
    """A batch's appends as they are sealed: the heads so far, what will be written."""

    at: str  # recorded_at of every event of the batch
    heads: dict[str, _Head]
    envelopes: list[dict[str, Any]] = field(default_factory=list)
    bodies: list[str] = field(default_factory=list)
    records: list[tuple[str, AppendResult]] = field(default_factory=list)


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

    async def find_commands(
        self, keys: Mapping[str, str | None], conn: DbConnection | None = None
    ) -> dict[str, AppendResult | IdempotencyKeyReusedError]:
        """``find_command`` for many keys (each with its request's fingerprint) in one read:
        the results of those handled before, or the refusal of a key reused."""
        rows = await (conn or self._pool).fetch(
            f"SELECT idempotency_key, {COMMAND_COLUMNS} FROM {self._schema}.commands "
            "WHERE idempotency_key = any($1::text[]) AND first_version > 0",
            list(keys),
        )
        return {
            row["idempotency_key"]: _first_or_refusal(row, keys[row["idempotency_key"]])
            for row in rows
        }

    async def find_answer(
        self, key: str, fingerprint: str | None, conn: DbConnection | None = None
    ) -> Answered | None:
        """The whole answer recorded for a batched request under this key, if any; a key
        recorded for a request of another fingerprint is refused."""
        row = await (conn or self._pool).fetchrow(
            f"SELECT fingerprint, response FROM {self._schema}.request_answers "
            "WHERE idempotency_key = $1",
            key,
        )
        if row is None:
            return None
        if fingerprint is not None and row["fingerprint"] not in (None, fingerprint):
            raise IdempotencyKeyReusedError()
        return Answered(orjson.loads(row["response"]), replayed=True)

    async def claim_answer(
        self, conn: DbConnection, key: str, fingerprint: str | None
    ) -> Answered | None:
        """Inside the caller's transaction, hold the request's key until it commits (a
        concurrent first attempt waits here), then ``find_answer``: the answer of an attempt
        that committed meanwhile, else None and the key is the caller's to answer."""
        # The two-number form is a lock space of its own: a key's hash can never meet the
        # relay's lock (one number), which its holder keeps for as long as it runs.
        await conn.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext($2))",
            REQUEST_KEY_LOCKS,
            f"{self._schema}:request:{key}",
        )
        return await self.find_answer(key, fingerprint, conn)

    async def record_answer(
        self, conn: DbConnection, key: str, fingerprint: str | None, response: Any
    ) -> None:
        """The request's whole answer under its key, in the transaction of what it appended."""
        await conn.execute(
            f"INSERT INTO {self._schema}.request_answers "
            "(idempotency_key, fingerprint, response) VALUES ($1, $2, $3::jsonb)",
            key,
            fingerprint,
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
        command = CommandAppend((StreamEvents(stream_id, expected_version, events),), context)
        (outcome,) = await self.append_batch(conn, [command])
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def append_batch(
        self, conn: DbConnection, commands: Sequence[CommandAppend]
    ) -> list[AppendOutcome]:
        """Many commands' appends in the caller's transaction, in a fixed number of statements
        whatever their number: claim the keys, lock (or create) every stream head, then write
        the events, their outbox rows, the heads and the commands' records at once.

        Each command gets its own outcome: its result (``duplicate`` when its key was handled
        before), or the error that refuses it alone (a stream not at its expected version, a
        key reused, an event too large), in which case nothing of its events is written, but
        its key stays claimed in this transaction: a caller that commits the others rolls the
        batch back first (the handler runs it in a savepoint, then again without the refused).
        Commands of one batch writing one stream are chained in the batch's order."""
        keys = [c.context.idempotency_key for c in commands if c.context.idempotency_key]
        if len(set(keys)) < len(keys):
            raise ValueError("an idempotency key appears twice in one batch")
        for command in commands:
            if not command.streams or not all(s.events for s in command.streams):
                raise ValueError("an append needs at least one event")
        read = _read_heads(commands[0]) if len(commands) == 1 else None
        if read is not None:
            return [await self._append_read(conn, commands[0], read)]
        outcomes: dict[int, AppendOutcome] = await self._claim_commands(conn, commands)
        live = [i for i in range(len(commands)) if i not in outcomes]
        heads = await self._lock_heads(
            conn, {s.stream_id for i in live for s in commands[i].streams}
        )
        batch = _Batch(rfc3339(self._clock()), dict(heads))
        for i in live:
            outcomes[i] = self._seal(commands[i], batch)
        if batch.envelopes:
            row = await self._write(conn, batch, heads, None)
            if row["outcome"] != "appended":  # the heads are locked: they cannot have moved
                raise RuntimeError(f"stream {row['stream_id']} moved under its lock")
            self._count(batch)
        return [outcomes[i] for i in range(len(commands))]

    async def _append_read(
        self, conn: DbConnection, command: CommandAppend, read: Mapping[str, _Head]
    ) -> AppendOutcome:
        """One command on streams its caller read: sealed after the heads it read, then its
        key claimed, its heads locked and checked, and its events written in one call."""
        batch = _Batch(rfc3339(self._clock()), dict(read))
        outcome = self._seal(command, batch)
        if isinstance(outcome, Exception):
            return outcome
        row = await self._write(conn, batch, read, command)
        if row["outcome"] == "taken":
            return _first_or_refusal(row, command.context.fingerprint)
        if row["outcome"] == "moved":
            stream_id = row["stream_id"]
            return ConcurrencyError(stream_id, read[stream_id].version, row["version"])
        self._count(batch)
        return outcome

    def _count(self, batch: _Batch) -> None:
        for envelope in batch.envelopes:
            EVENTS_APPENDED.labels(self._producer, envelope["event_type"]).inc()

    async def _claim_commands(
        self, conn: DbConnection, commands: Sequence[CommandAppend]
    ) -> dict[int, AppendOutcome]:
        """Claim the commands' keys (in key order, so two batches never wait on each other in
        a circle); those taken already answer with their first result."""
        keyed = {
            c.context.idempotency_key: (i, c)
            for i, c in enumerate(commands)
            if c.context.idempotency_key is not None
        }
        if not keyed:
            return {}
        # A concurrent first attempt holds a key's row lock: the insert waits for it to
        # commit (then the key is taken: return its result) or roll back (then it is ours).
        claimed = await conn.fetch(
            f"INSERT INTO {self._schema}.commands (idempotency_key, stream_id, event_ids, "
            "first_version, last_version, recorded_at, fingerprint) "
            "SELECT k, s, '{}', 0, 0, now(), f "
            "FROM unnest($1::text[], $2::text[], $3::text[]) AS t(k, s, f) ORDER BY k "
            "ON CONFLICT (idempotency_key) DO NOTHING RETURNING idempotency_key",
            list(keyed),
            [c.streams[0].stream_id for _, c in keyed.values()],
            [c.context.fingerprint for _, c in keyed.values()],
        )
        taken = set(keyed) - {row["idempotency_key"] for row in claimed}
        if not taken:
            return {}
        firsts = await conn.fetch(
            f"SELECT idempotency_key, {COMMAND_COLUMNS} FROM {self._schema}.commands "
            "WHERE idempotency_key = any($1::text[])",
            list(taken),
        )
        # The conflicting rows are committed and never deleted.
        return {
            keyed[row["idempotency_key"]][0]: _first_or_refusal(
                row, keyed[row["idempotency_key"]][1].context.fingerprint
            )
            for row in firsts
        }

    async def _lock_heads(self, conn: DbConnection, stream_ids: set[str]) -> dict[str, _Head]:
        """Lock the streams' heads in stream order, creating those that do not exist yet; one
        created meanwhile by another writer is locked once that writer committed."""
        ordered = sorted(stream_ids)
        rows = await conn.fetch(
            f"WITH locked AS (SELECT stream_id, version, last_hash FROM {self._schema}.streams "
            "WHERE stream_id = any($1::text[]) ORDER BY stream_id FOR UPDATE), "
            f"created AS (INSERT INTO {self._schema}.streams (stream_id, version, last_hash) "
            "SELECT s, 0, $2 FROM unnest($1::text[]) AS s ORDER BY s "
            "ON CONFLICT (stream_id) DO NOTHING RETURNING stream_id, version, last_hash) "
            "SELECT * FROM locked UNION ALL SELECT * FROM created",
            ordered,
            GENESIS_HASH,
        )
        heads = {r["stream_id"]: _Head(int(r["version"]), str(r["last_hash"])) for r in rows}
        raced = [s for s in ordered if s not in heads]
        if raced:
            rows = await conn.fetch(
                f"SELECT stream_id, version, last_hash FROM {self._schema}.streams "
                "WHERE stream_id = any($1::text[]) ORDER BY stream_id FOR UPDATE",
                raced,
            )
            heads |= {r["stream_id"]: _Head(int(r["version"]), str(r["last_hash"])) for r in rows}
        return heads

    def _seal(self, command: CommandAppend, batch: _Batch) -> AppendOutcome:
        """The command's events chained after its streams' heads, added to the batch; or what
        refuses it (then the batch holds nothing of it)."""
        envelopes: list[dict[str, Any]] = []
        bodies: list[str] = []
        moved: dict[str, _Head] = {}
        for stream in command.streams:
            head = batch.heads[stream.stream_id]
            expected = stream.expected_version
            if expected is not None and head.version != expected:
                return ConcurrencyError(stream.stream_id, expected, head.version)
            prev_hash = head.last_hash
            for offset, event in enumerate(stream.events, start=1):
                envelope = self._envelope(
                    stream.stream_id, head.version + offset, event, command.context, batch.at
                )
                envelope["prev_hash"] = prev_hash
                envelope["hash"] = prev_hash = compute_hash(envelope)
                body = orjson.dumps(envelope).decode()
                try:
                    self._refuse_unpublishable(envelope, body)
                except EnvelopeTooLargeError as too_large:
                    return too_large
                envelopes.append(envelope)
                bodies.append(body)
            moved[stream.stream_id] = _Head(head.version + len(stream.events), prev_hash)
        own = command.streams[0]
        result = AppendResult(
            own.stream_id,
            batch.heads[own.stream_id].version + 1,
            moved[own.stream_id].version,
            tuple(uuid.UUID(e["event_id"]) for e in envelopes),
            envelopes=tuple(envelopes),
        )
        if command.respond is not None:
            result = replace(result, response=command.respond(result))
        batch.heads |= moved
        batch.envelopes += envelopes
        batch.bodies += bodies
        if command.context.idempotency_key is not None:
            batch.records.append((command.context.idempotency_key, result))
        return result

    async def _write(
        self,
        conn: DbConnection,
        batch: _Batch,
        heads: Mapping[str, _Head],
        claim: CommandAppend | None,
    ) -> asyncpg.Record:
        """One call: ``claim``'s key claimed (when given), the ``heads`` the batch was sealed
        after locked and checked, then the events, their outbox rows, the streams' new heads,
        the commands' records with their answers, and the signal that wakes the relay. Its
        ``outcome`` says which: 'appended', 'taken' (the key's first record) or 'moved' (the
        stream's head now), when nothing was written."""
        envelopes, records = batch.envelopes, batch.records
        rows = await conn.fetch(
            f"SELECT * FROM {self._schema}.append_command({_arguments(23)})",
            None if claim is None else claim.context.idempotency_key,
            None if claim is None else claim.streams[0].stream_id,
            None if claim is None else claim.context.fingerprint,
            list(heads),
            [head.version for head in heads.values()],
            [head.last_hash for head in heads.values()],
            *_event_columns(envelopes, batch.bodies),
            current_traceparent(),
            [key for key, _ in records],
            [result.first_version for _, result in records],
            [result.last_version for _, result in records],
            [
                None if result.response is None else orjson.dumps(result.response).decode()
                for _, result in records
            ],
            [key for key, result in records for _ in result.event_ids],
            [event_id for _, result in records for event_id in result.event_ids],
            self.notify_channel,
        )
        return rows[0]  # it answers one row, whatever the outcome

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

    async def read_unless_handled(
        self, stream_id: str, context: CommandContext, conn: DbConnection
    ) -> AppendResult | list[StoredEvent]:
        """``find_command`` of the context's key and ``read_stream`` in one read: the first
        result when the key was handled before (a key reused for another request is refused),
        else the stream's events."""
        rows = await conn.fetch(
            f"SELECT {', '.join(f'c.{c}' for c in COMMAND_COLUMNS.split(', '))}, e.position, "
            f"e.body FROM (SELECT 1) AS one LEFT JOIN {self._schema}.commands AS c "
            "ON c.idempotency_key = $2 AND c.first_version > 0 "
            f"LEFT JOIN {self._schema}.events AS e ON c.idempotency_key IS NULL "
            "AND e.stream_id = $1 ORDER BY e.stream_version",
            stream_id,
            context.idempotency_key,
        )
        if rows[0]["first_version"] is not None:
            return _handled_before(rows[0], context.fingerprint)
        return [
            StoredEvent(r["position"], orjson.loads(r["body"]), r["body"])
            for r in rows
            if r["position"] is not None
        ]

    async def read_streams(
        self, stream_ids: Sequence[str], conn: DbConnection | None = None
    ) -> dict[str, list[StoredEvent]]:
        """``read_stream`` of many streams in one read (a stream without events is absent)."""
        rows = await (conn or self._pool).fetch(
            f"SELECT stream_id, position, body FROM {self._schema}.events "
            "WHERE stream_id = any($1::text[]) ORDER BY stream_id, stream_version",
            list(stream_ids),
        )
        streams: dict[str, list[StoredEvent]] = {}
        for r in rows:
            stored = StoredEvent(r["position"], orjson.loads(r["body"]), r["body"])
            streams.setdefault(r["stream_id"], []).append(stored)
        return streams


COMMAND_COLUMNS = "stream_id, event_ids, first_version, last_version, fingerprint, response"


def _arguments(count: int) -> str:
    return ", ".join(f"${n}" for n in range(1, count + 1))


def _read_heads(command: CommandAppend) -> dict[str, _Head] | None:
    """The heads the caller read its command's streams at; None unless it read every one."""
    heads = {}
    for stream in command.streams:
        if stream.expected_version is None or stream.read_hash is None:
            return None
        heads[stream.stream_id] = _Head(stream.expected_version, stream.read_hash)
    return heads


def _first_or_refusal(
    row: asyncpg.Record, fingerprint: str | None
) -> AppendResult | IdempotencyKeyReusedError:
    try:
        return _handled_before(row, fingerprint)
    except IdempotencyKeyReusedError as reused:
        return reused


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
            decided=d.data,
        )
        for d in decided
    ]


EVENTS_INSERT = (
    "INSERT INTO {schema}.events (event_id, stream_id, stream_version, event_type, "
    "schema_version, worker_id, recorded_at, hash, body) "
    "SELECT * FROM unnest($1::uuid[], $2::text[], $3::int[], $4::text[], $5::int[], "
    "$6::uuid[], $7::timestamptz[], $8::text[], $9::text[])"
)


def _event_columns(envelopes: Sequence[Mapping[str, Any]], bodies: Sequence[str]) -> list[Any]:
    return [
        [e["event_id"] for e in envelopes],
        [e["stream_id"] for e in envelopes],
        [e["stream_version"] for e in envelopes],
        [e["event_type"] for e in envelopes],
        [e["schema_version"] for e in envelopes],
        [e["worker_id"] for e in envelopes],
        [datetime.fromisoformat(e["recorded_at"]) for e in envelopes],
        [e["hash"] for e in envelopes],
        list(bodies),
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
        f"{EVENTS_INSERT.replace('{schema}', schema)} {tail}", *_event_columns(envelopes, bodies)
    )
