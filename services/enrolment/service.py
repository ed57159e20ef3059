"""Enrolment's application service: commands in, events out, through the pure domain.

Every command goes through the platform's command handler with the worker's rules
(``services.enrolment.domain.WorkerRules``); personal data is sealed under the worker's key
before deciding, and the NIK index (``services.enrolment.write_side``) is kept in the append's
transaction so that one person is registered once.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

import asyncpg

from contract.events.enrolment import RegistrationSource, WorkerPersonal
from contract.events.registry import CATALOGUE
from contract.policy import PolicyBook
from services.enrolment.domain import Command, CorrectDetails, RegisterWorker, Worker, WorkerRules
from services.enrolment.rules import membership_number
from services.enrolment.write_side import NikIndex, nik_digest
from shared.db import DbConnection
from shared.eventstore import EventStore
from shared.eventstore.handler import BatchItem, CommandHandler, Handled
from shared.eventstore.store import AppendResult, CommandContext
from shared.keystore import KeyStore
from shared.scope import AreaScope
from shared.sealing import key_id_for, new_data_key, open_sealed, seal

SERVICE = "enrolment"


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


def _registered(worker_id: uuid.UUID) -> Callable[[AppendResult], dict[str, str]]:
    """A registration's answer: the worker registered."""
    return lambda _: {"worker_id": str(worker_id)}


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
        self.inline = (NikIndex(keys, nik_secret, schema),)
        self.handler = CommandHandler(self.store, pool, CATALOGUE, self.inline)
        self.rules = WorkerRules(book)
        self.keys = keys
        self.book = book
        self._nik_secret = nik_secret
        self.clock = clock
        self._new_id = new_id

    def nik_digest(self, nik: str) -> bytes:
        return nik_digest(self._nik_secret, nik)

    async def worker_by_nik(self, nik: str, conn: DbConnection | None = None) -> uuid.UUID | None:
        found = await (conn or self.pool).fetchval(
            f"SELECT worker_id FROM {self.schema}.nik_index WHERE nik_digest = $1",
            self.nik_digest(nik),
        )
        return uuid.UUID(str(found)) if found else None

    async def load(
        self, worker_id: uuid.UUID, conn: DbConnection | None = None
    ) -> tuple[Worker, int]:
        loaded = await self.handler.load(stream_of(worker_id), self.rules, conn)
        return loaded.state, loaded.version

    async def register(
        self, registration: Registration, context: CommandContext
    ) -> tuple[uuid.UUID, Handled]:
        """Register a new person; the worker first registered under the command's key when it
        was handled before. The NIK is looked up only once the rules passed (by the index, in
        the append), so that a registration made up to test a NIK learns nothing unless it
        would register someone."""
        worker_id = self._new_id()
        nik = registration.personal.nik

        async def sealed_command(conn: DbConnection) -> RegisterWorker:
            key_id, key = await self.keys.create(worker_id, conn)
            return self._register_command(worker_id, registration, key_id, key)

        try:
            handled = await self.handler.handle(
                stream_of(worker_id),
                self.rules,
                sealed_command,
                context,
                worker_id=worker_id,
                respond=_registered(worker_id),
            )
        except asyncpg.UniqueViolationError:
            # Registered before, or meanwhile: the NIK index refused this one (rolled back).
            raise await self._duplicate(await self.worker_by_nik(nik)) from None
        assert handled.result is not None  # a registration always decides an event
        return uuid.UUID(handled.result.stream_id.removeprefix("worker-")), handled

    async def register_many(
        self, registrations: Sequence[tuple[Registration, CommandContext]]
    ) -> list[tuple[uuid.UUID, Handled] | Exception]:
        """Register many people in one transaction, each as ``register`` would: the worker and
        what was done (the first answer for a key handled before), or the error that refused
        that registration alone (RefusedError, DuplicateNikError, a row the store refused).
        The new workers' keys are stored in one statement and their NIKs checked in one read,
        for those the rules passed only; a NIK twice in the batch registers its first."""
        worker_ids = [self._new_id() for _ in registrations]
        keys = {worker_id: new_data_key() for worker_id in worker_ids}
        items = [
            BatchItem(
                stream_of(worker_id),
                self._register_command(worker_id, registration, key_id_for(worker_id), key),
                context,
                worker_id,
                respond=_registered(worker_id),
            )
            for worker_id, (registration, context), key in zip(
                worker_ids, registrations, keys.values(), strict=True
            )
        ]

        async def new_people_only(conn: DbConnection, indices: list[int]) -> dict[int, Exception]:
            digests = {i: self.nik_digest(registrations[i][0].personal.nik) for i in indices}
            registered = {
                bytes(row["nik_digest"]): uuid.UUID(str(row["worker_id"]))
                for row in await conn.fetch(
                    f"SELECT nik_digest, worker_id FROM {self.schema}.nik_index "
                    "WHERE nik_digest = any($1::bytea[])",
                    list(digests.values()),
                )
            }
            refused: dict[int, Exception] = {}
            first_of: dict[bytes, int] = {}
            for i, digest in digests.items():
                if digest in registered:
                    refused[i] = await self._duplicate(registered[digest], conn)
                elif digest in first_of:
                    first = first_of[digest]
                    kelurahan = registrations[first][0].kelurahan_code
                    refused[i] = DuplicateNikError(worker_ids[first], kelurahan)
                else:
                    first_of[digest] = i
            await self.keys.add_many(
                {worker_ids[i]: keys[worker_ids[i]] for i in indices if i not in refused}, conn
            )
            return refused

        outcomes = await self.handler.handle_many(self.rules, items, new_people_only)
        answers: list[tuple[uuid.UUID, Handled] | Exception] = []
        for registration, outcome in zip(registrations, outcomes, strict=True):
            if isinstance(outcome, asyncpg.UniqueViolationError):
                # Registered meanwhile by another transaction: the NIK index refused this one.
                outcome = await self._duplicate(
                    await self.worker_by_nik(registration[0].personal.nik)
                )
            if isinstance(outcome, Exception):
                answers.append(outcome)
                continue
            assert outcome.result is not None  # a registration always decides an event
            answers.append((uuid.UUID(outcome.result.stream_id.removeprefix("worker-")), outcome))
        return answers

    def _register_command(
        self, worker_id: uuid.UUID, registration: Registration, key_id: str, key: bytes
    ) -> RegisterWorker:
        return RegisterWorker(
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

    async def correct(
        self,
        worker_id: uuid.UUID,
        correction: Correction,
        context: CommandContext,
        scope: AreaScope,
    ) -> tuple[Handled, int]:
        """Correct a worker's details within the caller's area (where they are, and where a
        move takes them): what the handler did (nothing when nothing differs) and the stream's
        version. A correction that lost a race with another is decided again on what that one
        wrote, personal data included."""

        async def sealed_command(conn: DbConnection) -> CorrectDetails:
            worker, _ = await self.load(worker_id, conn)
            if not worker.registered or worker.personal is None:
                raise UnknownWorkerError(worker_id)
            scope.hide_outside(worker.kelurahan_code, UnknownWorkerError(worker_id))
            if correction.kelurahan_code is not None:
                scope.require(correction.kelurahan_code, "move a worker there")
            key = await self.keys.get(worker.personal.key_id, conn)
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
            # Sealed with the key just read through this transaction's connection: a second
            # connection from the pool, taken while this one is held, could wait forever.
            sealed = seal(personal, worker.personal.key_id, key) if personal and key else None
            return CorrectDetails(
                worker_id=worker_id,
                reason=correction.reason,
                nik=(personal or current).nik,
                at=self.clock(),
                personal=sealed,
                birth_date=correction.birth_date,
                sex=correction.sex,
                occupation_code=correction.occupation_code,
                kelurahan_code=correction.kelurahan_code,
            )

        try:
            handled = await self.handler.handle(
                stream_of(worker_id),
                self.rules,
                sealed_command,
                context,
                worker_id=worker_id,
                respond=lambda result: {"stream_version": result.last_version, "changed": True},
            )
        except asyncpg.UniqueViolationError:
            # The new NIK is another worker's: the NIK index refused the correction.
            raise await self._duplicate(await self.worker_by_nik(correction.nik or "")) from None
        if handled.result is not None:
            return handled, handled.result.last_version
        _, version = await self.load(worker_id)
        return handled, version

    async def _duplicate(
        self, holder: uuid.UUID | None, conn: DbConnection | None = None
    ) -> DuplicateNikError:
        if holder is None:
            return DuplicateNikError(None)
        worker, _ = await self.load(holder, conn)
        return DuplicateNikError(holder, worker.kelurahan_code)

    async def execute(
        self, command: Command, context: CommandContext, conn: DbConnection | None = None
    ) -> Handled:
        """Decide and append a command about an existing worker (``result`` None if nothing
        happened); inside ``conn``'s transaction when given."""
        assert not isinstance(command, RegisterWorker)
        return await self.handler.handle(
            stream_of(command.worker_id),
            self.rules,
            command,
            context,
            worker_id=command.worker_id,
            respond=lambda result: {"stream_version": result.last_version},
            conn=conn,
        )

    async def next_membership_no(self, conn: DbConnection) -> str:
        sequence = await conn.fetchval(f"SELECT nextval('{self.schema}.membership_seq')")
        return membership_number(int(sequence))
