"""Enrolment's application service: commands in, events out, through the pure domain.

It loads a worker's stream, decides with ``services.enrolment.domain``, seals personal data
under the worker's key, and appends, keeping the NIK index (a keyed digest, never the NIK) in the
same transaction so that one person is registered once.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime

import asyncpg

from services.enrolment.domain import (
    Command,
    CorrectDetails,
    RegisterWorker,
    Worker,
    decide,
    evolve,
)
from services.enrolment.rules import membership_number
from shared.db import DbConnection
from shared.events.enrolment import RegistrationSource, WorkerPersonal
from shared.events.personal import KeyStore, open_sealed, seal
from shared.events.registry import parse
from shared.events.types import SealedPersonal
from shared.eventstore import AppendResult, EventStore
from shared.eventstore.migrations import Migration
from shared.eventstore.store import CommandContext, ConcurrencyError, to_new_events
from shared.policy import PolicyBook
from shared.scope import AreaScope

SERVICE = "enrolment"

WRITE_MODEL = (
    Migration(
        "nik_index",
        """
        -- One person, one registration: a keyed digest of the NIK, never the NIK itself.
        CREATE TABLE {schema}.nik_index (
            nik_digest bytea PRIMARY KEY,
            worker_id  uuid NOT NULL UNIQUE
        );
        CREATE SEQUENCE {schema}.membership_seq;
        """,
    ),
)


# Corrections of one worker racing each other: each is decided again on what the others wrote.
CORRECTION_ATTEMPTS = 5


class DuplicateNikError(Exception):
    """The NIK is another worker's. Who that worker is shows only to a caller whose area
    reaches them (``seen_by``): anyone else learns no more than that the NIK is taken."""

    def __init__(self, worker_id: uuid.UUID | None, kelurahan_code: str | None = None) -> None:
        super().__init__(
            f"this NIK is already registered as worker {worker_id}"
            if worker_id
            else "this NIK is already registered, outside your area"
        )
        self.worker_id = worker_id
        self.kelurahan_code = kelurahan_code

    def seen_by(self, scope: AreaScope) -> DuplicateNikError:
        return self if scope.allows(self.kelurahan_code) else DuplicateNikError(None)


class UnknownWorkerError(LookupError):
    def __init__(self, worker_id: uuid.UUID) -> None:
        super().__init__(f"no worker {worker_id}")


class ErasedWorkerError(Exception):
    def __init__(self, worker_id: uuid.UUID) -> None:
        super().__init__(f"the personal data of worker {worker_id} was erased")


def stream_of(worker_id: uuid.UUID) -> str:
    return f"worker-{worker_id}"


@dataclass(frozen=True)
class Registration:
    personal: WorkerPersonal
    birth_date: date
    sex: str
    occupation_code: str
    kelurahan_code: str
    source: RegistrationSource


@dataclass(frozen=True)
class Correction:
    """What a correction asks to change (None: leave as it is), and why."""

    reason: str
    nik: str | None = None
    full_name: str | None = None
    address: str | None = None
    birth_date: date | None = None
    sex: str | None = None
    occupation_code: str | None = None
    kelurahan_code: str | None = None


class EnrolmentService:
    def __init__(
        self,
        pool: asyncpg.Pool,
        keys: KeyStore,
        book: PolicyBook,
        nik_secret: bytes,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        new_id: Callable[[], uuid.UUID] = uuid.uuid4,
        schema: str = SERVICE,
    ) -> None:
        self.pool = pool
        self.schema = schema
        self.store = EventStore(pool, schema, SERVICE, clock=clock)
        self.keys = keys
        self.book = book
        self._nik_secret = nik_secret
        self.clock = clock
        self._new_id = new_id

    def nik_digest(self, nik: str) -> bytes:
        return hmac.new(self._nik_secret, nik.encode(), hashlib.sha256).digest()

    async def worker_by_nik(self, nik: str, conn: DbConnection | None = None) -> uuid.UUID | None:
        found = await (conn or self.pool).fetchval(
            f"SELECT worker_id FROM {self.schema}.nik_index WHERE nik_digest = $1",
            self.nik_digest(nik),
        )
        return uuid.UUID(str(found)) if found else None

    async def load(
        self, worker_id: uuid.UUID, conn: DbConnection | None = None
    ) -> tuple[Worker, int]:
        worker, version = Worker(), 0
        for stored in await self.store.read_stream(stream_of(worker_id), conn):
            _, data = parse(stored.envelope)
            worker, version = evolve(worker, data), version + 1
        return worker, version

    async def register(
        self, registration: Registration, context: CommandContext
    ) -> tuple[uuid.UUID, AppendResult]:
        if context.idempotency_key and (
            first := await self.store.find_command(context.idempotency_key)
        ):
            return uuid.UUID(first.stream_id.removeprefix("worker-")), first
        # The NIK is looked up only after the rules passed (in the index insert below), so that
        # a registration made up to test a NIK learns nothing unless it would register someone.
        worker_id = self._new_id()
        async with self.pool.acquire() as conn, conn.transaction():
            key_id, key = await self.keys.create(worker_id, conn)
            command = RegisterWorker(
                worker_id=worker_id,
                nik=registration.personal.nik,
                personal=seal(registration.personal, key_id, key),
                birth_date=registration.birth_date,
                sex=registration.sex,
                occupation_code=registration.occupation_code,
                kelurahan_code=registration.kelurahan_code,
                source=registration.source,
                at=self.clock(),
            )
            events = to_new_events(decide(command, Worker(), self.book), worker_id)
            result = await self.store.append_within(conn, stream_of(worker_id), 0, events, context)
            if result.duplicate:
                return uuid.UUID(result.stream_id.removeprefix("worker-")), result
            indexed = await conn.fetchval(
                f"INSERT INTO {self.schema}.nik_index VALUES ($1, $2) "
                "ON CONFLICT (nik_digest) DO NOTHING RETURNING true",
                self.nik_digest(registration.personal.nik),
                worker_id,
            )
            if not indexed:  # registered before, or meanwhile: roll all of it back
                existing = await self.worker_by_nik(registration.personal.nik, conn)
                raise await self._duplicate(existing or worker_id)
        return worker_id, result

    async def correct(
        self,
        worker_id: uuid.UUID,
        correction: Correction,
        context: CommandContext,
        scope: AreaScope,
    ) -> tuple[AppendResult | None, int]:
        """Correct a worker's details within the caller's area (where they are, and where a
        move takes them): the append, or None when nothing differs, and the stream's version.
        A correction that lost a race with another is decided again on what that one wrote."""
        for _ in range(CORRECTION_ATTEMPTS - 1):
            try:
                return await self._correct_once(worker_id, correction, context, scope)
            except ConcurrencyError:
                continue
        return await self._correct_once(worker_id, correction, context, scope)

    async def _correct_once(
        self,
        worker_id: uuid.UUID,
        correction: Correction,
        context: CommandContext,
        scope: AreaScope,
    ) -> tuple[AppendResult | None, int]:
        worker, version = await self.load(worker_id)
        if not worker.registered or worker.personal is None:
            raise UnknownWorkerError(worker_id)
        scope.require(worker.kelurahan_code, "correct a worker")
        if correction.kelurahan_code is not None:
            scope.require(correction.kelurahan_code, "move a worker there")
        key = await self.keys.get(worker.personal.key_id)
        current = open_sealed(worker.personal, key, WorkerPersonal)
        if not isinstance(current, WorkerPersonal):
            raise ErasedWorkerError(worker_id)
        requested = {
            "nik": correction.nik,
            "full_name": correction.full_name,
            "address": correction.address,
        }
        changed = {
            field: value
            for field, value in requested.items()
            if value is not None and value != getattr(current, field)
        }
        personal = current.model_copy(update=changed) if changed else None
        command = CorrectDetails(
            worker_id=worker_id,
            reason=correction.reason,
            nik=(personal or current).nik,
            at=self.clock(),
            personal=await self.seal_for(worker_id, personal) if personal else None,
            birth_date=correction.birth_date,
            sex=correction.sex,
            occupation_code=correction.occupation_code,
            kelurahan_code=correction.kelurahan_code,
        )
        events = to_new_events(decide(command, worker, self.book), worker_id)
        if not events:
            return None, version
        async with self.pool.acquire() as conn, conn.transaction():
            if "nik" in changed:
                await self._reindex(conn, worker_id, changed["nik"])
            result = await self.store.append_within(
                conn, stream_of(worker_id), version, events, context
            )
        return result, result.last_version

    async def _reindex(self, conn: DbConnection, worker_id: uuid.UUID, nik: str) -> None:
        """Point the NIK index at the worker's new NIK, unless another worker holds it."""
        if (holder := await self.worker_by_nik(nik, conn)) and holder != worker_id:
            raise await self._duplicate(holder)
        try:
            # A savepoint, so that the holder can still be read once the index refuses.
            async with conn.transaction():
                await conn.execute(
                    f"UPDATE {self.schema}.nik_index SET nik_digest = $1 WHERE worker_id = $2",
                    self.nik_digest(nik),
                    worker_id,
                )
        except asyncpg.UniqueViolationError:  # taken meanwhile by a concurrent command
            raise await self._duplicate(await self.worker_by_nik(nik, conn)) from None

    async def _duplicate(self, holder: uuid.UUID | None) -> DuplicateNikError:
        if holder is None:
            return DuplicateNikError(None)
        worker, _ = await self.load(holder)
        return DuplicateNikError(holder, worker.kelurahan_code)

    async def execute(
        self, command: Command, context: CommandContext, conn: DbConnection | None = None
    ) -> AppendResult | None:
        """Decide and append a command about an existing worker; None if nothing happened."""
        assert not isinstance(command, RegisterWorker)
        worker, version = await self.load(command.worker_id, conn)
        events = to_new_events(decide(command, worker, self.book), command.worker_id)
        if not events:
            return None
        stream = stream_of(command.worker_id)
        if conn is not None:
            return await self.store.append_within(conn, stream, version, events, context)
        async with self.pool.acquire() as own, own.transaction():
            return await self.store.append_within(own, stream, version, events, context)

    async def next_membership_no(self, conn: DbConnection) -> str:
        sequence = await conn.fetchval(f"SELECT nextval('{self.schema}.membership_seq')")
        return membership_number(int(sequence))

    async def seal_for(self, worker_id: uuid.UUID, personal: WorkerPersonal) -> SealedPersonal:
        key_id, key = await self.keys.get_or_create(worker_id)
        return seal(personal, key_id, key)
