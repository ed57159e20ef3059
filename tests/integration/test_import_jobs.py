"""Imports as jobs on the real stack: a list is answered at once (202) and registered in chunks
in the background; its progress and report are read within the importer's area; the same
Idempotency-Key answers the same job; a job whose process was stopped in the middle of a chunk
goes on in a new process with no row registered twice and none lost; a file beyond the bounds
is refused while it arrives, leaving nothing stored."""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import asyncpg
import httpx
import pytest
from openpyxl import Workbook

from services.enrolment import wiring as enrolment_wiring
from services.enrolment.import_jobs import ImportJobs
from services.enrolment.imports import COLUMNS, MAX_BYTES, MAX_ROWS
from services.enrolment.service import EnrolmentService
from shared.auth import AuthSettings
from shared.runtime import ServiceProcess
from shared.settings import DatabaseSettings, KafkaSettings
from tests.integration.sandbox import eventually, isolated, running
from tests.tokens import bearer

pytestmark = pytest.mark.integration
SAPURO = "33.75.01.1004"


def officer() -> dict[str, str]:
    """The importing officer's headers, asked for when used: a token taken when the module is
    collected would have expired by the time a long run reaches these tests."""
    return bearer("kelurahan_officer", SAPURO)


def as_csv() -> dict[str, str]:
    return {**officer(), "content-type": "text/csv"}


def nik(n: int, birth: date, sex: str) -> str:
    day = birth.day + (40 if sex == "F" else 0)
    return f"337501{day:02d}{birth.month:02d}{birth.year % 100:02d}{n % 9999 + 1:04d}"


def kelurahan_list(count: int, delimiter: str = ",") -> tuple[bytes, set[int]]:
    """A list of ``count`` rows; every 50th row is not a date, so refused."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter)
    writer.writerow(COLUMNS)
    bad = set()
    for i in range(count):
        birth = date(1965 + i % 35, 1 + i % 12, 1 + i % 28)
        sex = "F" if i % 2 else "M"
        row = [nik(i, birth, sex), f"Pekerja {i}", birth.isoformat(), sex, "tukang_becak"]
        row += [SAPURO, f"Gang {i}", "", "Ahli Waris", "spouse"]
        if i % 50 == 7:
            row[2] = "1990-02-30"
            bad.add(i + 2)  # the header is row 1
        writer.writerow(row)
    return out.getvalue().encode(), bad


async def registered_events(process: ServiceProcess) -> int:
    return int(
        await process.pool.fetchval(
            f"SELECT count(*) FROM {process.name}.events WHERE event_type = 'WorkerRegistered'"
        )
    )


async def stored_jobs(process: ServiceProcess) -> tuple[int, int]:
    jobs = await process.pool.fetchval(f"SELECT count(*) FROM {process.name}.import_jobs")
    pieces = await process.pool.fetchval(f"SELECT count(*) FROM {process.name}.import_files")
    return int(jobs), int(pieces)


async def finished(api: httpx.AsyncClient, location: str) -> dict[str, Any]:
    """The job once it is done (the bound only ends a broken run)."""
    for _ in range(6000):
        job = (await api.get(location, headers=officer())).json()
        if job["state"] in ("done", "failed"):
            return dict(job)
        await asyncio.sleep(0.05)
    raise AssertionError(f"the import never finished: {job}")


def report_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture
async def world(
    kafka_settings: KafkaSettings, separate_database: DatabaseSettings
) -> tuple[KafkaSettings, DatabaseSettings]:
    return await isolated(kafka_settings, separate_database, "jobs"), separate_database


@pytest.fixture
async def enrolment(
    world: tuple[KafkaSettings, DatabaseSettings],
) -> AsyncIterator[tuple[ServiceProcess, EnrolmentService, httpx.AsyncClient]]:
    kafka, database = world
    process, service = await enrolment_wiring.build(kafka, database, AuthSettings())
    jobs = ImportJobs(service, chunk_rows=400, poll_seconds=0.1)
    async with running(process, [jobs.job()]) as api:
        yield process, service, api


async def test_an_import_is_answered_at_once_and_registers_its_rows_in_chunks(
    enrolment: tuple[ServiceProcess, EnrolmentService, httpx.AsyncClient],
) -> None:
    process, _, api = enrolment
    content, bad = kelurahan_list(1000, delimiter=";")
    listed = b"\xef\xbb\xbf" + content  # as a spreadsheet saves CSV UTF-8
    accepted = await api.post("/imports", content=listed, headers=as_csv())
    assert accepted.status_code == 202, accepted.text
    location = accepted.headers["location"]
    assert location == f"/imports/{accepted.json()['import_id']}"
    assert accepted.json()["rows_total"] == 1000
    job = await finished(api, location)
    assert job["state"] == "done", job
    assert (job["rows_done"], job["registered"], job["refused"]) == (
        1000,
        1000 - len(bad),
        len(bad),
    )
    assert job["already_registered"] == 0
    assert job["started_at"] is not None
    assert job["finished_at"] is not None
    report = report_rows((await api.get(job["report"], headers=officer())).text)
    assert [int(r["row"]) for r in report] == list(range(2, 1002))
    assert {int(r["row"]) for r in report if r["outcome"] == "refused"} == bad
    assert await registered_events(process) == 1000 - len(bad)
    assert await stored_jobs(process) == (1, 0)  # the file is gone once the job is done

    # The same file again is another job, whose rows were all registered before.
    again = await finished(
        api, (await api.post("/imports", content=listed, headers=as_csv())).headers["location"]
    )
    assert (again["already_registered"], again["registered"]) == (1000 - len(bad), 0)
    assert again["batch_id"] == job["batch_id"]
    assert again["import_id"] != job["import_id"]
    assert await registered_events(process) == 1000 - len(bad)


async def test_an_xlsx_list_is_imported_from_its_first_sheet(
    enrolment: tuple[ServiceProcess, EnrolmentService, httpx.AsyncClient],
) -> None:
    _, _, api = enrolment
    content, bad = kelurahan_list(30)
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for record in csv.reader(io.StringIO(content.decode())):
        sheet.append(record)
    workbook = io.BytesIO()
    book.save(workbook)
    accepted = await api.post(
        "/imports",
        content=workbook.getvalue(),
        headers={
            **officer(),
            "content-type": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        },
    )
    assert accepted.status_code == 202, accepted.text
    job = await finished(api, accepted.headers["location"])
    assert (job["registered"], job["refused"]) == (30 - len(bad), len(bad))


async def test_the_same_idempotency_key_answers_the_same_job_and_refuses_another_file(
    enrolment: tuple[ServiceProcess, EnrolmentService, httpx.AsyncClient],
) -> None:
    process, _, api = enrolment
    content, _ = kelurahan_list(20)
    keyed = {**as_csv(), "Idempotency-Key": str(uuid.uuid4())}
    first = await api.post("/imports", content=content, headers=keyed)
    assert first.status_code == 202, first.text
    retried = await api.post("/imports", content=content, headers=keyed)
    assert retried.status_code == 200, retried.text
    assert retried.json()["import_id"] == first.json()["import_id"]
    assert retried.headers["location"] == first.headers["location"]
    other, _ = kelurahan_list(21)
    refused = await api.post("/imports", content=other, headers=keyed)
    assert refused.status_code == 422
    assert "Idempotency-Key was already used with a different request" in refused.json()["detail"]
    await finished(api, first.headers["location"])
    assert (await stored_jobs(process))[0] == 1


async def test_an_import_is_read_only_within_the_importers_area(
    enrolment: tuple[ServiceProcess, EnrolmentService, httpx.AsyncClient],
) -> None:
    _, _, api = enrolment
    content, _ = kelurahan_list(10)
    location = (await api.post("/imports", content=content, headers=as_csv())).headers["location"]
    await finished(api, location)
    neighbour = bearer("kelurahan_officer", "33.75.01.1005")
    elsewhere = bearer("kecamatan_officer", "33.75.02")
    for headers in (neighbour, elsewhere):
        assert (await api.get(location, headers=headers)).status_code == 404
        assert (await api.get(f"{location}/report.csv", headers=headers)).status_code == 404
    for headers in (bearer("kecamatan_officer", "33.75.01"), bearer("auditor")):
        assert (await api.get(location, headers=headers)).json()["rows_done"] == 10
    assert (await api.get(f"/imports/{uuid.uuid4()}", headers=officer())).status_code == 404


async def test_a_file_beyond_the_bounds_is_refused_as_it_arrives_and_nothing_is_stored(
    enrolment: tuple[ServiceProcess, EnrolmentService, httpx.AsyncClient],
) -> None:
    process, _, api = enrolment
    header = (",".join(COLUMNS) + "\n").encode()
    line = b"x" * 998 + b",\n"  # one row refused for its cell, a thousand to a megabyte

    async def too_large() -> AsyncIterator[bytes]:  # no length declared up front
        yield header
        for _ in range(MAX_BYTES // 2**20 + 1):
            yield line * (2**20 // len(line) + 1)

    oversized = await api.post("/imports", content=too_large(), headers=as_csv())
    assert oversized.status_code == 413, oversized.text
    assert f"over {MAX_BYTES:,} bytes: split the file" in oversized.json()["detail"]
    too_many = await api.post(
        "/imports", content=header + b"x\n" * (MAX_ROWS + 1), headers=as_csv()
    )
    assert too_many.status_code == 422
    assert f"over {MAX_ROWS:,} rows" in too_many.json()["detail"]
    unreadable = await api.post("/imports", content=header + b'"open,quote\n' * 3, headers=as_csv())
    assert unreadable.status_code == 422
    assert "not valid CSV" in unreadable.json()["detail"]
    assert await stored_jobs(process) == (0, 0)
    assert await registered_events(process) == 0


async def test_progress_commits_chunk_by_chunk_and_a_stopped_job_goes_on_where_it_stopped(
    world: tuple[KafkaSettings, DatabaseSettings],
) -> None:
    kafka, database = world
    process, service = await enrolment_wiring.build(kafka, database, AuthSettings())
    content, bad = kelurahan_list(900)
    async with running(process) as api:
        location = (await api.post("/imports", content=content, headers=as_csv())).headers[
            "location"
        ]
        queued = (await api.get(location, headers=officer())).json()
        assert (queued["state"], queued["rows_done"]) == ("queued", 0)
        # A runner asked to stop ends the chunk in hand: the job is left running, its first
        # chunk committed and reported.
        stopping = asyncio.Event()
        stopping.set()
        assert await ImportJobs(service, chunk_rows=300).run_next(stopping)
        stopped = (await api.get(location, headers=officer())).json()
        assert (stopped["state"], stopped["rows_done"]) == ("running", 300)
        assert stopped["rows_per_second"] is not None
        partial = report_rows((await api.get(f"{location}/report.csv", headers=officer())).text)
        assert [int(r["row"]) for r in partial] == list(range(2, 302))
        # The process stops in the middle of the next chunk: its rows registered, none committed
        # to the job. Holding the report's table keeps the job's commit waiting, so the stop
        # falls between the two on every run.
        holder = await asyncpg.connect(database.database_url)
        held = holder.transaction()
        await held.start()
        await holder.execute(f"LOCK TABLE {service.schema}.import_rows IN SHARE MODE")
        runner = asyncio.create_task(ImportJobs(service, chunk_rows=300).run(asyncio.Event()))
        try:

            async def chunk_registered() -> bool:
                return await registered_events(process) > stopped["registered"]

            await eventually(chunk_registered)
            runner.cancel()
            with pytest.raises(asyncio.CancelledError):
                await runner
        finally:
            await held.rollback()
            await holder.close()
        interrupted = (await api.get(location, headers=officer())).json()
        assert interrupted["state"] == "running"
        assert interrupted["rows_done"] < 900
        registered_before = await registered_events(process)

    # A new process goes on after the last committed chunk.
    restarted, service = await enrolment_wiring.build(kafka, database, AuthSettings())
    jobs = ImportJobs(service, chunk_rows=300, poll_seconds=0.1)
    async with running(restarted, [jobs.job()]) as api:
        job = await finished(api, location)
        report = report_rows((await api.get(job["report"], headers=officer())).text)
        assert await registered_events(restarted) == 900 - len(bad)  # nobody registered twice
    assert job["state"] == "done"
    assert [int(r["row"]) for r in report] == list(range(2, 902))  # each row once, none lost
    good = 900 - len(bad)
    assert (job["registered"] + job["already_registered"], job["refused"]) == (good, len(bad))
    # The rows the stopped process had registered are found by their key: registered before.
    assert job["already_registered"] == registered_before - interrupted["registered"]
    assert {int(r["row"]) for r in report if r["outcome"] == "refused"} == bad
    assert len({r["worker_id"] for r in report if r["outcome"] != "refused"}) == good
