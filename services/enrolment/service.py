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
from shared.events.personal import KeyStore, seal
from shared.events.registry import parse
from shared.events.types import SealedPersonal
from shared.eventstore import AppendResult, EventStore
from shared.eventstore.migrations import Migration
from shared.eventstore.store import CommandContext, to_new_events
from shared.policy import PolicyBook

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


class DuplicateNikError(Exception):
    def __init__(self, worker_id: uuid.UUID) -> None:
        super().__init__(f"this NIK is already registered as worker {worker_id}")
        self.worker_id = worker_id


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
        if existing := await self.worker_by_nik(registration.personal.nik):
            raise DuplicateNikError(existing)
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
            if not indexed:  # registered meanwhile by a concurrent command: roll all of it back
                existing = await self.worker_by_nik(registration.personal.nik, conn)
                raise DuplicateNikError(existing or worker_id)
        return worker_id, result

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
            if isinstance(command, CorrectDetails) and command.personal is not None:
                try:
                    await own.execute(
                        f"UPDATE {self.schema}.nik_index SET nik_digest = $1 WHERE worker_id = $2",
                        self.nik_digest(command.nik),
                        command.worker_id,
                    )
                except asyncpg.UniqueViolationError:
                    # PostgreSQL's message names the digest: it must reach no log or answer.
                    holder = await self.worker_by_nik(command.nik)
                    raise DuplicateNikError(holder or command.worker_id) from None
            return await self.store.append_within(own, stream, version, events, context)

    async def next_membership_no(self, conn: DbConnection) -> str:
        sequence = await conn.fetchval(f"SELECT nextval('{self.schema}.membership_seq')")
        return membership_number(int(sequence))

    async def seal_for(self, worker_id: uuid.UUID, personal: WorkerPersonal) -> SealedPersonal:
        key_id, key = await self.keys.get_or_create(worker_id)
        return seal(personal, key_id, key)
