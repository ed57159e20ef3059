"""Imports as jobs: a list is stored as it arrives, then registered in chunks in the background.

``receive`` streams the upload into the service's schema (pieces of the file in
``import_files``), reading it as it goes, so that a file that is not a readable list, holds too
many rows or is too large is refused while it arrives and leaves nothing behind; a file accepted
is a job (``import_jobs``) queued in the same transaction. ``ImportJobs.run``, a background job
of the enrolment process, takes each unfinished job in turn (one runner per job, by an advisory
lock held while it runs), reads its file back piece by piece, and registers it a chunk of rows at
a time (``register_rows``); each chunk's row outcomes and the job's progress commit together.
A job stopped by a shutdown or a crash goes on after its last committed chunk when the service
starts again: rows of the interrupted chunk that had been registered are found by their
idempotency key (``import:<file digest>:<row>``) and answer ``already_registered``, so no row is
registered twice and none is lost.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import logging
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any

import asyncpg

from services.enrolment.imports import (
    MAX_BYTES,
    XLSX_MAGIC,
    BatchDigest,
    CsvReader,
    CsvRow,
    ImportFileError,
    RowResult,
    register_rows,
    xlsx_as_csv,
)
from services.enrolment.service import EnrolmentService
from shared.db import DbConnection
from shared.eventstore.migrations import Migration
from shared.eventstore.store import IdempotencyKeyReusedError
from shared.scope import AreaScope

log = logging.getLogger(__name__)

IMPORT_TABLES = (
    Migration(
        "import_rows",
        """
    CREATE TABLE {schema}.import_rows (
        batch_id  text NOT NULL,
        row       integer NOT NULL,
        outcome   text NOT NULL,      -- registered, already_registered, refused
        worker_id uuid,
        reasons   text NOT NULL DEFAULT '',
        PRIMARY KEY (batch_id, row)
    );
    """,
    ),
    Migration(
        "import_rows_area",
        """
        -- The area of the officer who imported the file: its report is read within that area.
        ALTER TABLE {schema}.import_rows ADD COLUMN kelurahan_code text,
            ADD COLUMN kecamatan_code text;
        """,
    ),
    # One report per import: the rows' outcomes keyed by the import, so a second import of the
    # same file (every row "already_registered") sits beside the first instead of overwriting.
    Migration(
        "import_reports",
        """
        ALTER TABLE {schema}.import_rows ADD COLUMN import_id uuid;
        UPDATE {schema}.import_rows SET import_id = md5(batch_id)::uuid;
        ALTER TABLE {schema}.import_rows ALTER COLUMN import_id SET NOT NULL;
        ALTER TABLE {schema}.import_rows DROP CONSTRAINT import_rows_pkey;
        ALTER TABLE {schema}.import_rows ADD PRIMARY KEY (import_id, row);
        CREATE INDEX ON {schema}.import_rows (batch_id);
        """,
    ),
    Migration(
        "import_jobs",
        """
        -- An import as a job: its file stored in pieces until it is done, its progress counted
        -- as each chunk commits (last_row: the spreadsheet number of the last row committed).
        CREATE TABLE {schema}.import_jobs (
            import_id          uuid PRIMARY KEY,
            batch_id           text NOT NULL,
            idempotency_key    text UNIQUE,
            fingerprint        text NOT NULL,
            actor_id           text NOT NULL,
            actor_role         text NOT NULL,
            area               text,
            kelurahan_code     text,
            kecamatan_code     text,
            state              text NOT NULL,  -- queued, running, done, failed
            file_bytes         bigint NOT NULL,
            pieces             integer NOT NULL,
            rows_total         integer NOT NULL,
            rows_done          integer NOT NULL DEFAULT 0,
            last_row           integer NOT NULL DEFAULT 1,
            registered         integer NOT NULL DEFAULT 0,
            already_registered integer NOT NULL DEFAULT 0,
            refused            integer NOT NULL DEFAULT 0,
            accepted_at        timestamptz NOT NULL,
            started_at         timestamptz,
            finished_at        timestamptz,
            failure            text
        );
        CREATE INDEX ON {schema}.import_jobs (accepted_at) WHERE state IN ('queued', 'running');
        CREATE TABLE {schema}.import_files (
            import_id uuid NOT NULL REFERENCES {schema}.import_jobs ON DELETE CASCADE,
            piece     integer NOT NULL,
            data      bytea NOT NULL,
            PRIMARY KEY (import_id, piece)
        );
        """,
    ),
)

# A stored piece of a file: what the service holds of it at a time, receiving or reading back.
PIECE_BYTES = 2**20
# Rows registered and committed at a time: the most a restart makes a job do again.
CHUNK_ROWS = 1_000
# How often a runner looks for a job accepted here or by another replica.
POLL_SECONDS = 1.0
# The class of the advisory locks that let one runner at a time run a job.
LOCK_CLASS = 0x696D70


@dataclass(frozen=True)
class Importer:
    """Who sent an import, as the job keeps them: its rows are registered in their scope."""

    subject: str
    role: str
    area: str | None

    def scope(self) -> AreaScope:
        return AreaScope.of(self)


@dataclass(frozen=True)
class Job:
    import_id: uuid.UUID
    batch_id: str
    state: str
    rows_total: int
    rows_done: int
    registered: int
    already_registered: int
    refused: int
    accepted_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    failure: str | None

    def rows_per_second(self, now: datetime) -> float | None:
        if self.started_at is None:
            return None
        seconds = ((self.finished_at or now) - self.started_at).total_seconds()
        return round(self.rows_done / seconds, 1) if seconds > 0 else None


_JOB_COLUMNS = (
    "import_id, batch_id, state, rows_total, rows_done, registered, already_registered, "
    "refused, accepted_at, started_at, finished_at, failure"
)


def _job(row: asyncpg.Record) -> Job:
    return Job(**{name: row[name] for name in Job.__dataclass_fields__})


class _ReplayedError(Exception):
    """Unwinds a receiving transaction whose key already names a job: nothing of it is kept."""

    def __init__(self, job: Job) -> None:
        self.job = job


async def receive(
    service: EnrolmentService,
    body: AsyncIterator[bytes],
    importer: Importer,
    key: str | None,
) -> tuple[Job, bool]:
    """Store an uploaded list and queue it: the job, and whether it is new (False: the key's
    first job, sent again with the same file). Refused (``ImportFileError``, or
    ``IdempotencyKeyReusedError`` for a key first sent with another file) with nothing kept."""
    scope = importer.scope()
    import_id = uuid.uuid4()
    fingerprint = ""
    try:
        async with service.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                f"INSERT INTO {service.schema}.import_jobs (import_id, batch_id, fingerprint, "
                "actor_id, actor_role, area, kelurahan_code, kecamatan_code, state, file_bytes, "
                "pieces, rows_total, accepted_at) "
                "VALUES ($1, '', '', $2, $3, $4, $5, $6, 'queued', 0, 0, 0, $7)",
                import_id,
                importer.subject,
                importer.role,
                importer.area,
                *scope.row_codes(),
                service.clock(),
            )
            stored = _StoredFile(conn, service.schema, import_id, BatchDigest(scope.area))
            await stored.receive(body)
            fingerprint = hashlib.sha256(f"POST /imports\n{stored.batch_id}".encode()).hexdigest()
            if key is not None:
                first = await _job_by_key(conn, service.schema, key)
                if first is not None:
                    raise _ReplayedError(await _replayed(first, fingerprint))
            await conn.execute(
                f"UPDATE {service.schema}.import_jobs SET batch_id = $2, idempotency_key = $3, "
                "fingerprint = $4, file_bytes = $5, pieces = $6, rows_total = $7 "
                "WHERE import_id = $1",
                import_id,
                stored.batch_id,
                key,
                fingerprint,
                stored.size,
                stored.pieces,
                stored.reader.rows,
            )
            job = await _job_by_id(conn, service.schema, import_id)
    except _ReplayedError as replayed:
        return replayed.job, False
    except asyncpg.UniqueViolationError:
        # The same key sent twice at once: the other upload queued its job first.
        async with service.pool.acquire() as conn:
            first = await _job_by_key(conn, service.schema, key or "")
        if first is None:
            raise
        return await _replayed(first, fingerprint), False
    assert job is not None  # inserted in this transaction
    return job, True


async def _replayed(first: tuple[Job, str], fingerprint: str) -> Job:
    job, first_fingerprint = first
    if first_fingerprint != fingerprint:
        raise IdempotencyKeyReusedError
    return job


class _StoredFile:
    """An upload read as a list and stored piece by piece as it arrives (an XLSX workbook kept
    in a temporary file until it is whole, then stored as the CSV of its first sheet)."""

    def __init__(
        self, conn: DbConnection, schema: str, import_id: uuid.UUID, digest: BatchDigest
    ) -> None:
        self.conn = conn
        self.schema = schema
        self.import_id = import_id
        self.digest = digest
        self.reader = CsvReader(keep_rows=False)
        self.size = 0
        self.pieces = 0
        self._pending = bytearray()

    @property
    def batch_id(self) -> str:
        return self.digest.batch_id

    async def receive(self, body: AsyncIterator[bytes]) -> None:
        head: bytearray | None = (
            bytearray()
        )  # the first bytes, until they tell a workbook from a CSV file
        workbook: IO[bytes] | None = None
        try:
            async for data in body:
                self.size += len(data)
                self.digest.update(data)
                if workbook is not None:
                    workbook.write(data)
                elif head is None:
                    await self._add(data)
                else:
                    head += data
                    if len(head) < len(XLSX_MAGIC):
                        continue
                    if head.startswith(XLSX_MAGIC):
                        workbook = tempfile.TemporaryFile()  # noqa: SIM115 - closed below
                        workbook.write(head)
                    else:
                        await self._add(bytes(head))
                    head = None
            if workbook is not None:
                await self._store_workbook(workbook)
            elif head is not None:
                await self._add(bytes(head))
            self.reader.close()
            await self._store(final=True)
        finally:
            if workbook is not None:
                workbook.close()

    async def _add(self, data: bytes) -> None:
        """Read ``data`` as the list's next bytes, and keep it: stored a piece at a time."""
        self.reader.feed(data)
        self._pending += data
        await self._store(final=False)

    async def _store(self, final: bool) -> None:
        while len(self._pending) >= PIECE_BYTES or (final and self._pending):
            piece = bytes(self._pending[:PIECE_BYTES])
            del self._pending[:PIECE_BYTES]
            await self.conn.execute(
                f"INSERT INTO {self.schema}.import_files (import_id, piece, data) "
                "VALUES ($1, $2, $3)",
                self.import_id,
                self.pieces,
                piece,
            )
            self.pieces += 1

    async def _store_workbook(self, workbook: IO[bytes]) -> None:
        with tempfile.TemporaryFile("w+", encoding="utf-8", newline="") as sheet:
            workbook.seek(0)
            await asyncio.to_thread(xlsx_as_csv, workbook, sheet, MAX_BYTES)
            sheet.seek(0)
            while text := sheet.read(PIECE_BYTES // 4):
                await self._add(text.encode())


async def _job_by_id(conn: DbConnection, schema: str, import_id: uuid.UUID) -> Job | None:
    row = await conn.fetchrow(
        f"SELECT {_JOB_COLUMNS} FROM {schema}.import_jobs WHERE import_id = $1", import_id
    )
    return _job(row) if row else None


async def _job_by_key(conn: DbConnection, schema: str, key: str) -> tuple[Job, str] | None:
    row = await conn.fetchrow(
        f"SELECT {_JOB_COLUMNS}, fingerprint FROM {schema}.import_jobs WHERE idempotency_key = $1",
        key,
    )
    return (_job(row), row["fingerprint"]) if row else None


async def job_in_scope(
    service: EnrolmentService, import_id: uuid.UUID, scope: AreaScope
) -> Job | None:
    """One job made within the caller's area (as its report is), or None."""
    within = scope.sql_filter(2, "kelurahan_code", "kecamatan_code")
    row = await service.pool.fetchrow(
        f"SELECT {_JOB_COLUMNS} FROM {service.schema}.import_jobs "
        f"WHERE import_id = $1 AND {within.condition}",
        import_id,
        *within.args,
    )
    return _job(row) if row else None


REPORT_PAGE = 5_000  # report rows read from the database at a time


async def report_csv(service: EnrolmentService, import_id: uuid.UUID) -> AsyncIterator[str]:
    """The report of a job (found in the caller's scope first): its rows as CSV, a page at a
    time, so that a million rows are never held at once."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["row", "outcome", "worker_id", "reasons"])
    after = 0
    while True:
        rows = await service.pool.fetch(
            f"SELECT row, outcome, worker_id, reasons FROM {service.schema}.import_rows "
            "WHERE import_id = $1 AND row > $2 ORDER BY row LIMIT $3",
            import_id,
            after,
            REPORT_PAGE,
        )
        for r in rows:
            writer.writerow([r["row"], r["outcome"], r["worker_id"] or "", r["reasons"]])
        yield out.getvalue()
        out.seek(0)
        out.truncate()
        if len(rows) < REPORT_PAGE:
            return
        after = rows[-1]["row"]


class ImportJobs:
    """The runner of the service's import jobs (a background job of its process)."""

    def __init__(
        self,
        service: EnrolmentService,
        chunk_rows: int = CHUNK_ROWS,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self.service = service
        self.chunk_rows = chunk_rows
        self.poll_seconds = poll_seconds

    def job(self) -> Callable[[asyncio.Event], Coroutine[Any, Any, None]]:
        async def import_jobs(stop: asyncio.Event) -> None:
            await self.run(stop)

        return import_jobs

    async def run(self, stop: asyncio.Event) -> None:
        """Run unfinished jobs, oldest first, until ``stop``: a job in hand ends its chunk."""
        while not stop.is_set():
            try:
                ran = await self.run_next(stop)
            except Exception:
                # The database went away under a chunk (it was rolled back), or anything else:
                # the job goes on from its last chunk in the next round; the service keeps serving.
                log.exception("an import job was interrupted; it goes on shortly")
                ran = False
            if not ran:
                try:
                    await asyncio.wait_for(stop.wait(), timeout=self.poll_seconds)
                except TimeoutError:
                    continue

    async def run_next(self, stop: asyncio.Event) -> bool:
        """Run the oldest unfinished job no other runner holds; False when there is none."""
        schema = self.service.schema
        waiting = await self.service.pool.fetch(
            f"SELECT import_id FROM {schema}.import_jobs WHERE state IN ('queued', 'running') "
            "ORDER BY accepted_at"
        )
        for candidate in waiting:
            import_id = candidate["import_id"]
            lock = (LOCK_CLASS, f"{schema}:{import_id}")
            async with self.service.pool.acquire() as held:
                if not await held.fetchval("SELECT pg_try_advisory_lock($1, hashtext($2))", *lock):
                    continue
                try:
                    await self._run(import_id, stop)
                finally:
                    await held.execute("SELECT pg_advisory_unlock($1, hashtext($2))", *lock)
            return True
        return False

    async def _run(self, import_id: uuid.UUID, stop: asyncio.Event) -> None:
        schema = self.service.schema
        row = await self.service.pool.fetchrow(
            f"UPDATE {schema}.import_jobs SET state = 'running', "
            "started_at = coalesce(started_at, $2) "
            "WHERE import_id = $1 AND state IN ('queued', 'running') "
            "RETURNING batch_id, actor_id, actor_role, area, pieces, last_row",
            import_id,
            self.service.clock(),
        )
        if row is None:  # finished meanwhile by the runner that held it before
            return
        run = _Run(
            self.service,
            import_id,
            row["batch_id"],
            Importer(row["actor_id"], row["actor_role"], row["area"]),
        )
        chunk: list[CsvRow] = []
        reader = CsvReader()
        try:
            for piece in range(row["pieces"]):
                data = await self.service.pool.fetchval(
                    f"SELECT data FROM {schema}.import_files WHERE import_id = $1 AND piece = $2",
                    import_id,
                    piece,
                )
                for read in reader.feed(data):
                    if read.number > row["last_row"]:
                        chunk.append(read)
                    if len(chunk) == self.chunk_rows:
                        await run.commit(chunk, final=False)
                        chunk = []
                        if stop.is_set():
                            return  # left running: the next start goes on from here
            chunk += [read for read in reader.close() if read.number > row["last_row"]]
        except ImportFileError as error:
            await run.fail(str(error))
            return
        await run.commit(chunk, final=True)


class _Run:
    """One job being run: its chunks registered and committed with the job's progress."""

    def __init__(
        self, service: EnrolmentService, import_id: uuid.UUID, batch_id: str, importer: Importer
    ) -> None:
        self.service = service
        self.import_id = import_id
        self.batch_id = batch_id
        self.importer = importer
        self.scope = importer.scope()
        self.correlation = uuid.uuid5(uuid.NAMESPACE_URL, f"berlian:import:{batch_id}")

    async def commit(self, chunk: Sequence[CsvRow], final: bool) -> None:
        results = await self._earlier_rows_named(await self._outcomes(chunk))
        schema = self.service.schema
        area = self.scope.row_codes()
        async with self.service.pool.acquire() as conn, conn.transaction():
            await conn.copy_records_to_table(
                "import_rows",
                schema_name=schema,
                columns=(
                    "import_id",
                    "batch_id",
                    "row",
                    "outcome",
                    "worker_id",
                    "reasons",
                    "kelurahan_code",
                    "kecamatan_code",
                ),
                records=[
                    (
                        self.import_id,
                        self.batch_id,
                        r.row,
                        r.outcome,
                        r.worker_id,
                        "; ".join(r.reasons),
                        *area,
                    )
                    for r in results
                ],
            )
            counts = {
                outcome: sum(1 for r in results if r.outcome == outcome)
                for outcome in ("registered", "already_registered", "refused")
            }
            await conn.execute(
                f"UPDATE {schema}.import_jobs SET rows_done = rows_done + $2, "
                "registered = registered + $3, already_registered = already_registered + $4, "
                "refused = refused + $5, last_row = greatest(last_row, $6), "
                "state = CASE WHEN $7 THEN 'done' ELSE state END, "
                "finished_at = CASE WHEN $7 THEN $8 ELSE finished_at END "
                "WHERE import_id = $1",
                self.import_id,
                len(results),
                counts["registered"],
                counts["already_registered"],
                counts["refused"],
                results[-1].row if results else 1,
                final,
                self.service.clock(),
            )
            if final:  # the report stays; the file is no longer needed
                await conn.execute(
                    f"DELETE FROM {schema}.import_files WHERE import_id = $1", self.import_id
                )

    async def fail(self, reason: str) -> None:
        schema = self.service.schema
        async with self.service.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                f"UPDATE {schema}.import_jobs SET state = 'failed', failure = $2, "
                "finished_at = $3 WHERE import_id = $1",
                self.import_id,
                reason,
                self.service.clock(),
            )
            await conn.execute(
                f"DELETE FROM {schema}.import_files WHERE import_id = $1", self.import_id
            )

    async def _outcomes(self, chunk: Sequence[CsvRow]) -> list[RowResult]:
        """Each row's outcome: refused for its shape or a NIK met earlier in the chunk, the
        others as ``register_rows`` registers them."""
        first_row_of_nik: dict[str, int] = {}
        outcomes: dict[int, RowResult] = {}
        to_register: list[CsvRow] = []
        for row in chunk:
            nik = row.cells.get("nik", "")
            if row.problems:
                outcomes[row.number] = RowResult(row.number, "refused", reasons=row.problems)
            elif nik in first_row_of_nik:
                first = first_row_of_nik[nik]
                outcomes[row.number] = RowResult(
                    row.number, "refused", reasons=(f"nik: the same NIK as row {first}",)
                )
            else:
                first_row_of_nik[nik] = row.number
                to_register.append(row)
        registered = await register_rows(
            self.service,
            to_register,
            self.batch_id,
            self.importer.subject,
            self.correlation,
            self.scope,
        )
        for result in registered:
            outcomes[result.row] = result
        return [outcomes[number] for number in sorted(outcomes)]

    async def _earlier_rows_named(self, results: list[RowResult]) -> list[RowResult]:
        """A NIK refused as another worker's, when an earlier chunk of this file registered that
        worker, is refused as the same NIK as that row (as within a chunk)."""
        holders = [r.worker_id for r in results if r.outcome == "refused" and r.worker_id]
        if not holders:
            return results
        rows = await self.service.pool.fetch(
            f"SELECT worker_id, row FROM {self.service.schema}.import_rows "
            "WHERE import_id = $1 AND worker_id = ANY($2) AND outcome <> 'refused'",
            self.import_id,
            holders,
        )
        row_of = {r["worker_id"]: r["row"] for r in rows}
        return [
            RowResult(
                r.row, r.outcome, r.worker_id, (f"nik: the same NIK as row {row_of[r.worker_id]}",)
            )
            if r.outcome == "refused" and r.worker_id in row_of
            else r
            for r in results
        ]
