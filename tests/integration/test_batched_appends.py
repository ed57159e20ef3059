"""Batched appends on the real PostgreSQL: many commands in one transaction, each refused, replayed
or decided again alone, and a batched import that survives its connection dying mid-chunk."""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime

import asyncpg
import pytest

from contract.events.enrolment import RegistrationSource, WorkerPersonal
from contract.events.registry import CATALOGUE
from contract.policy import policy_book
from services.billing.budget import AllocateBudget, BudgetRules
from services.catalog import WRITE_MODELS
from services.enrolment.imports import COLUMNS, BatchDigest, CsvReader, RowResult, register_rows
from services.enrolment.service import DuplicateNikError, EnrolmentService, Registration
from shared.decisions import RefusedError
from shared.eventstore import ConcurrencyError, EventStore, NewEvent
from shared.eventstore.handler import BatchItem, CommandHandler
from shared.eventstore.migrations import migrate
from shared.eventstore.store import CommandAppend, CommandContext, StreamEvents
from shared.keystore import PostgresKeyStore
from shared.scope import AreaScope
from shared.settings import DatabaseSettings, KafkaSettings
from tests.integration.sandbox import ServiceSandbox, eventually, make_sandbox
from tests.integration.test_eventstore import assert_chained

pytestmark = pytest.mark.integration

KRAPYAK = "33.75.03.1002"
NOW = datetime(2025, 3, 3, 2, 0, tzinfo=UTC)


class Officer:
    role = "kelurahan_officer"
    area = KRAPYAK


@pytest.fixture
async def enrolment(
    migrated: DatabaseSettings, kafka_settings: KafkaSettings
) -> AsyncIterator[tuple[EnrolmentService, ServiceSandbox]]:
    """Enrolment in a schema of its own (its NIK index and import reports), with the run's key
    store."""
    box = await make_sandbox(migrated, kafka_settings, service="enrolment")
    async with box.pool.acquire() as conn:
        await migrate(conn, box.schema, WRITE_MODELS["enrolment"])
    keys = PostgresKeyStore.from_environment(box.pool)
    yield EnrolmentService(box.pool, keys, policy_book(), b"n" * 40, schema=box.schema), box
    await box.pool.close()


def person(serial: int, birth: date = date(1990, 5, 17)) -> dict[str, str]:
    """A valid person of Krapyak; ``serial`` makes the NIK."""
    return {
        "nik": f"337503{birth:%d%m%y}{serial:04d}",
        "full_name": f"Pekerja {serial}",
        "birth_date": birth.isoformat(),
        "sex": "M",
        "occupation_code": "tukang_becak",
        "kelurahan_code": KRAPYAK,
        "address": f"Gang Krapyak {serial}",
    }


def registration(fields: dict[str, str]) -> Registration:
    return Registration(
        WorkerPersonal(nik=fields["nik"], full_name=fields["full_name"], address=fields["address"]),
        date.fromisoformat(fields["birth_date"]),
        fields["sex"],
        fields["occupation_code"],
        fields["kelurahan_code"],
        RegistrationSource(channel="api"),
    )


def keyed(key: str) -> CommandContext:
    return CommandContext("officer-1", "kelurahan_officer", uuid.uuid4(), idempotency_key=key)


async def count(box: ServiceSandbox, table: str) -> int:
    return int(await box.pool.fetchval(f"SELECT count(*) FROM {box.schema}.{table}"))


async def test_a_batch_commits_every_registration_but_those_refused(
    enrolment: tuple[EnrolmentService, ServiceSandbox],
) -> None:
    service, box = enrolment
    holder, _ = await service.register(registration(person(1)), keyed("first"))
    too_young = person(3, birth=date(2015, 5, 17))

    answers = await service.register_many(
        [
            (registration(person(2)), keyed("a")),
            (registration(too_young), keyed("b")),
            (registration(person(1)), keyed("c")),  # the NIK of the worker registered first
            (registration(person(4)), keyed("d")),
            (registration({**person(2), "full_name": "Another"}), keyed("e")),  # a NIK twice
        ]
    )

    registered, young, taken, fourth, twice = answers
    assert isinstance(registered, tuple)
    assert isinstance(fourth, tuple)
    assert isinstance(young, RefusedError)
    assert isinstance(taken, DuplicateNikError)
    assert taken.worker_id == holder
    assert isinstance(twice, DuplicateNikError)
    assert twice.worker_id == registered[0]
    assert await service.worker_by_nik(person(2)["nik"]) == registered[0]
    assert await service.worker_by_nik(person(4)["nik"]) == fourth[0]
    assert await service.worker_by_nik(too_young["nik"]) is None
    assert await count(box, "events") == 3
    assert await count(box, "nik_index") == 3
    # Nothing of a refused item stays behind: no claimed key, no data key of its worker.
    assert (
        await box.pool.fetchval(
            f"SELECT count(*) FROM {box.schema}.commands WHERE first_version = 0"
        )
        == 0
    )
    workers = [
        row["worker_id"]
        for row in await box.pool.fetch(f"SELECT DISTINCT worker_id FROM {box.schema}.events")
    ]
    assert (
        await box.pool.fetchval(
            "SELECT count(*) FROM keystore.data_keys WHERE worker_id = any($1::uuid[])", workers
        )
        == 3
    )


async def test_a_batch_replayed_returns_its_first_answers_and_appends_nothing(
    enrolment: tuple[EnrolmentService, ServiceSandbox],
) -> None:
    service, box = enrolment
    batch = [(registration(person(n)), keyed(f"row-{n}")) for n in (1, 2, 3)]
    first = await service.register_many(batch)

    again = await service.register_many([*batch[1:], (registration(person(4)), keyed("row-4"))])

    assert all(isinstance(answer, tuple) for answer in first + again)
    assert [a[0] for a in again[:2]] == [a[0] for a in first[1:]]  # type: ignore[index]
    assert [a[1].replayed for a in again] == [True, True, False]  # type: ignore[union-attr]
    assert again[0][1].response == first[1][1].response  # type: ignore[index, union-attr]
    assert await count(box, "events") == 4
    assert await count(box, "commands") == 4


def allocation(amount: int) -> AllocateBudget:
    return AllocateBudget(2025, "APBD", "regular", amount, NOW)


async def test_a_stream_overtaken_inside_a_batch_is_decided_again_on_its_new_state(
    sandbox: ServiceSandbox,
) -> None:
    store = EventStore(sandbox.pool, sandbox.schema, sandbox.service, clock=lambda: NOW)
    handler = CommandHandler(store, sandbox.pool, CATALOGUE)
    items = [
        BatchItem("budget-2025", allocation(amount), keyed(f"allocation-{amount}"))
        for amount in (100, 200, 300)
    ]

    handled = await handler.handle_many(BudgetRules(policy_book()), items)

    assert [h.result.last_version for h in handled] == [1, 2, 3]  # type: ignore[union-attr]
    events = [e.envelope for e in await store.read_stream("budget-2025")]
    assert [e["data"]["amount"] for e in events] == [100, 200, 300]
    assert_chained(events)


async def test_a_stale_expected_version_refuses_its_command_alone(sandbox: ServiceSandbox) -> None:
    store = EventStore(sandbox.pool, sandbox.schema, sandbox.service, clock=lambda: NOW)
    await store.append("budget-2024", 0, [budget(1)], keyed("before"))

    def command(stream: str, expected: int, key: str) -> CommandAppend:
        return CommandAppend((StreamEvents(stream, expected, [budget(2)]),), keyed(key))

    async with sandbox.pool.acquire() as conn:
        batch = conn.transaction()
        await batch.start()
        stale, fresh = await store.append_batch(
            conn, [command("budget-2024", 0, "stale"), command("budget-2025", 0, "fresh")]
        )
        written = {s: len(await store.read_stream(s, conn)) for s in ("budget-2024", "budget-2025")}
        await batch.rollback()  # the refused command's key is claimed: not to be committed

    assert isinstance(stale, ConcurrencyError)
    assert stale.actual == 1
    assert not isinstance(fresh, Exception)
    assert fresh.last_version == 1
    assert written == {"budget-2024": 1, "budget-2025": 1}


def budget(amount: int) -> NewEvent:
    return NewEvent(
        "BudgetAllocated",
        {"fiscal_year": 2024, "source": "APBD", "amount": amount, "cohort": "regular"},
        occurred_at=NOW,
    )


def batch_id_of(content: bytes, area: str) -> str:
    digest = BatchDigest(area)
    digest.update(content)
    return digest.batch_id


async def import_in_chunks(
    service: EnrolmentService, content: bytes, actor_id: str, scope: AreaScope, chunk_rows: int
) -> list[RowResult]:
    """The file's rows registered a chunk at a time, as an import job registers them."""
    reader = CsvReader()
    rows = reader.feed(content) + reader.close()
    batch_id = batch_id_of(content, scope.area)
    correlation = uuid.uuid5(uuid.NAMESPACE_URL, f"berlian:import:{batch_id}")
    results: list[RowResult] = []
    for start in range(0, len(rows), chunk_rows):
        chunk = rows[start : start + chunk_rows]
        results += await register_rows(service, chunk, batch_id, actor_id, correlation, scope)
    return results


def csv_of(rows: list[dict[str, str]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


async def test_an_import_whose_connection_died_mid_chunk_registers_each_row_once_on_its_rerun(
    enrolment: tuple[EnrolmentService, ServiceSandbox],
    migrated: DatabaseSettings,
) -> None:
    service, box = enrolment
    content = csv_of([person(n) for n in range(1, 9)])  # rows 2-9: chunks 2-4, 5-7, 8-9
    scope = AreaScope.of(Officer())
    blocker = await asyncpg.connect(migrated.database_url)
    held = blocker.transaction()
    await held.start()
    # Holds row 6's key: the second chunk's transaction waits on it (the first chunk committed),
    # and its connection is terminated while it waits.
    await blocker.execute(
        f"INSERT INTO {box.schema}.commands (idempotency_key, stream_id, event_ids, "
        "first_version, last_version, recorded_at) VALUES ($1, 'held', '{}', 0, 0, now())",
        f"import:{batch_id_of(content, scope.area)}:6",
    )
    first_import = asyncio.create_task(import_in_chunks(service, content, "officer-1", scope, 3))
    waiting: list[int] = []

    async def chunk_waits() -> bool:
        # Watched from another connection: inside a transaction the activity view stays as it
        # was first read.
        waiting[:] = [
            row["pid"]
            for row in await box.pool.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND query LIKE $1",
                f"%INSERT INTO {box.schema}.commands%",
            )
        ]
        return bool(waiting)

    try:
        await eventually(chunk_waits)
        await box.pool.execute("SELECT pg_terminate_backend($1)", waiting[0])
        with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError)):
            await first_import
    finally:
        first_import.cancel()
        await held.rollback()
        await blocker.close()
    assert await count(box, "events") == 3  # the first chunk; nothing of the second

    rerun = await import_in_chunks(service, content, "officer-1", scope, 3)

    assert [r.outcome for r in rerun] == ["already_registered"] * 3 + ["registered"] * 5
    assert await count(box, "events") == 8
    assert await count(box, "nik_index") == 8
    assert (
        await box.pool.fetchval(f"SELECT count(DISTINCT stream_id) FROM {box.schema}.events") == 8
    )
    assert (
        await box.pool.fetchval(
            f"SELECT count(*) FROM {box.schema}.commands WHERE first_version = 0"
        )
        == 0
    )
