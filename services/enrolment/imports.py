"""Bulk registration from a kelurahan's CSV list, row by row (several rows at a time).

Each row is registered on its own under the idempotency key ``import:<file digest>:<row>``, so
one bad row never blocks or half-writes the others, and importing the same file again registers
nothing twice (each row returns its first result). Every import keeps its own report, under
its own import id: importing a file again adds a report and never rewrites the first one.

Rows are numbered as a spreadsheet shows them (the header is row 1); a blank line is no row: it
keeps its number but is neither imported nor counted. A row with more cells than the header, a
cell or a row beyond its bound is refused before any of it is read into a registration.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import date

from pydantic import ValidationError

from services.enrolment.service import DuplicateNikError, EnrolmentService, Registration
from shared.decisions import RefusedError
from shared.events.bounds import ADDRESS_CHARS
from shared.events.enrolment import Heir, RegistrationSource, WorkerPersonal
from shared.eventstore.migrations import Migration
from shared.eventstore.store import CommandContext
from shared.scope import AreaScope

COLUMNS = (
    "nik",
    "full_name",
    "birth_date",
    "sex",
    "occupation_code",
    "kelurahan_code",
    "address",
    "phone",
    "heir_name",
    "heir_relationship",
)
REQUIRED = COLUMNS[:7]

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
)


# An import's memory grows with its file (the text, a result per row, the answer): these bounds
# keep the largest within the service's memory limit (measured by ./berlian bench).
MAX_ROWS = 100_000
MAX_BYTES = 16 * 2**20
# Twice the longest column's own bound (the address): any longer cell is refused as it is, and
# a row holds the ten columns near their bounds, no more.
MAX_CELL_CHARS = 2 * ADDRESS_CHARS
MAX_ROW_CHARS = 4 * MAX_CELL_CHARS


class ImportFileError(ValueError):
    """The file as a whole cannot be read (encoding, header): nothing was registered."""


@dataclass(frozen=True)
class CsvRow:
    number: int  # the row as a spreadsheet numbers it: the header is row 1
    cells: dict[str, str]
    problems: tuple[str, ...] = ()  # the row's own shape: too many cells, or too long


@dataclass(frozen=True)
class RowResult:
    row: int
    outcome: str
    worker_id: uuid.UUID | None = None
    reasons: tuple[str, ...] = ()


@dataclass
class ImportResult:
    batch_id: str  # the file's digest: the same for every import of one file
    import_id: uuid.UUID  # this import: its report
    rows: list[RowResult] = field(default_factory=list)

    def count(self, outcome: str) -> int:
        return sum(1 for r in self.rows if r.outcome == outcome)


def batch_id_of(content: bytes, area: str) -> str:
    """One batch per file and area: the same file imported in another kelurahan is another
    batch, with its own report."""
    return hashlib.sha256(area.encode() + b"\n" + content).hexdigest()[:16]


def decode(content: bytes) -> str:
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ImportFileError(
            f"the file is not UTF-8 (at byte {error.start}); save it as CSV UTF-8 and import again"
        ) from None


def _blank(record: list[str]) -> bool:
    return not any(cell.strip() for cell in record)


def read_rows(text: str) -> Iterator[CsvRow]:
    """The rows of a well-formed file; a malformed one (an unclosed quote, a stray NUL), one
    with too many rows or a header naming a column twice is refused whole, before any row is
    registered."""
    lines = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = [name.strip().lower() for name in next(lines, [])]
        records = sum(1 for record in lines if not _blank(record))
    except csv.Error as error:
        raise ImportFileError(
            f"line {lines.line_num} is not valid CSV ({error}); nothing was imported"
        ) from None
    _check_header(header)
    if records > MAX_ROWS:
        raise ImportFileError(
            f"the file has {records:,} rows; at most {MAX_ROWS:,} are imported at once: "
            "split it; nothing was imported"
        )
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    next(reader)
    for number, record in enumerate(reader, start=2):  # row 1 is the header
        if not _blank(record):
            yield _row(number, header, record)


def _check_header(header: list[str]) -> None:
    missing = [name for name in REQUIRED if name not in header]
    if missing:
        raise ImportFileError(
            f"missing columns: {', '.join(missing)}; expected {', '.join(COLUMNS)}"
        )
    seen: dict[str, int] = {}
    for position, name in enumerate(header, start=1):
        if name and name in seen:
            raise ImportFileError(
                f"the header names column {name!r} twice (columns {seen[name]} and {position}): "
                "which one holds the data is unclear; nothing was imported"
            )
        seen[name] = position


def _row(number: int, header: list[str], record: list[str]) -> CsvRow:
    problems = []
    if len(record) > len(header):
        problems.append(f"row: {len(record)} cells, but the header names {len(header)} columns")
    if sum(len(cell) for cell in record) > MAX_ROW_CHARS:
        problems.append(f"row: over {MAX_ROW_CHARS:,} characters")
    cells = {}
    for position, (name, cell) in enumerate(zip(header, record, strict=False), start=1):
        if len(cell) > MAX_CELL_CHARS:
            # A column of the file's own naming is named by its place: its header is the file's
            # text, as unchecked as a cell.
            column = name if name in COLUMNS else f"column {position}"
            problems.append(f"{column}: over {MAX_CELL_CHARS:,} characters")
        elif name:
            cells[name] = cell.strip()
    if problems:
        return CsvRow(number, {}, tuple(problems))
    return CsvRow(number, {name: cells.get(name, "") for name in header if name})


def registration_from(row: dict[str, str], batch_id: str, number: int) -> Registration:
    """A registration from a CSV row, or ValueError naming the bad fields."""
    problems = []
    try:
        birth_date = date.fromisoformat(row["birth_date"])
    except ValueError:
        # The reason names the column and the problem, never the cell: it may hold a NIK.
        problems.append("birth_date: is not a date (YYYY-MM-DD)")
    sex = row["sex"].upper()[:1]
    if sex not in ("M", "F", "L", "P"):
        problems.append("sex: is not M/F (or L/P)")
    heirs = []
    if row.get("heir_name"):
        try:
            heirs.append(
                Heir(name=row["heir_name"], relationship=row.get("heir_relationship") or "spouse")
            )
        except ValidationError as error:
            problems += [f"heir_{e['loc'][0]}: {e['msg']}" for e in error.errors()]
    try:
        personal = WorkerPersonal(
            nik=row["nik"],
            full_name=row["full_name"],
            address=row["address"],
            phone=row.get("phone") or None,
            heirs=heirs,
        )
    except ValidationError as error:
        problems += [f"{e['loc'][0]}: {e['msg']}" for e in error.errors()]
    if problems:
        raise ValueError("; ".join(problems))
    return Registration(
        personal=personal,
        birth_date=birth_date,
        sex={"L": "M", "P": "F"}.get(sex, sex),
        occupation_code=row["occupation_code"],
        kelurahan_code=row["kelurahan_code"],
        source=RegistrationSource(channel="import", batch_id=batch_id, row=number),
    )


# Rows registered at once: their transactions commit together (one disk flush for several),
# while their order in the report and the file's own duplicates stay as in the file.
CONCURRENT_ROWS = 8  # below the service's pool of ten connections


async def import_csv(
    service: EnrolmentService,
    content: bytes,
    actor_id: str,
    scope: AreaScope,
    progress: Callable[[int], None] = lambda _: None,
) -> ImportResult:
    batch_id = batch_id_of(content, scope.area)
    result = ImportResult(batch_id, uuid.uuid4())
    correlation = uuid.uuid5(uuid.NAMESPACE_URL, f"berlian:import:{batch_id}")
    first_row_of_nik: dict[str, int] = {}
    window: list[Awaitable[RowResult]] = []
    for row in read_rows(decode(content)):
        nik = row.cells.get("nik", "")
        if row.problems:
            window.append(_refused(row.number, *row.problems))
        elif nik in first_row_of_nik:
            window.append(_refused(row.number, f"nik: the same NIK as row {first_row_of_nik[nik]}"))
        else:
            first_row_of_nik[nik] = row.number
            window.append(
                _import_row(service, row.cells, row.number, batch_id, actor_id, correlation, scope)
            )
        if len(window) == CONCURRENT_ROWS:
            result.rows += await _gathered(window, progress)
            window = []
    result.rows += await _gathered(window, progress)
    area = scope.row_codes()
    await service.pool.executemany(
        f"INSERT INTO {service.schema}.import_rows (import_id, batch_id, row, outcome, "
        "worker_id, reasons, kelurahan_code, kecamatan_code) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        [
            (result.import_id, batch_id, r.row, r.outcome, r.worker_id, "; ".join(r.reasons), *area)
            for r in result.rows
        ],
    )
    return result


async def _gathered(
    window: list[Awaitable[RowResult]], progress: Callable[[int], None]
) -> list[RowResult]:
    rows = list(await asyncio.gather(*window))
    progress(len(rows))
    return rows


async def _refused(number: int, *reasons: str) -> RowResult:
    return RowResult(number, "refused", reasons=reasons)


async def _import_row(
    service: EnrolmentService,
    row: dict[str, str],
    number: int,
    batch_id: str,
    actor_id: str,
    correlation: uuid.UUID,
    scope: AreaScope,
) -> RowResult:
    if not scope.allows(row.get("kelurahan_code", "")):
        return RowResult(
            number,
            "refused",
            reasons=(f"kelurahan_code: {row.get('kelurahan_code')!r} is outside {scope.area}",),
        )
    try:
        registration = registration_from(row, batch_id, number)
        context = CommandContext(
            actor_id,
            "kelurahan_officer",
            correlation,
            idempotency_key=f"import:{batch_id}:{number}",
        )
        worker_id, handled = await service.register(registration, context)
    except ValueError as error:
        return RowResult(number, "refused", reasons=tuple(str(error).split("; ")))
    except RefusedError as refused:
        return RowResult(number, "refused", reasons=tuple(str(p) for p in refused.problems))
    except DuplicateNikError as duplicate:
        seen = duplicate.seen_by(scope)
        return RowResult(number, "refused", seen.worker_id, (str(seen),))
    return RowResult(number, "already_registered" if handled.replayed else "registered", worker_id)


async def report_csv(
    service: EnrolmentService, import_id: uuid.UUID, scope: AreaScope
) -> str | None:
    """The report of one import made within the caller's area, or None."""
    within = scope.sql_filter(2, "kelurahan_code", "kecamatan_code")
    rows = await service.pool.fetch(
        f"SELECT row, outcome, worker_id, reasons FROM {service.schema}.import_rows "
        f"WHERE import_id = $1 AND {within.condition} ORDER BY row",
        import_id,
        *within.args,
    )
    if not rows:
        return None
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["row", "outcome", "worker_id", "reasons"])
    for r in rows:
        writer.writerow([r["row"], r["outcome"], r["worker_id"] or "", r["reasons"]])
    return out.getvalue()
