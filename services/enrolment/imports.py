"""Reading a kelurahan's list and registering its rows.

A list arrives as CSV (comma or semicolon separated, UTF-8 with or without a byte order mark)
or as an XLSX workbook (its first sheet, turned into CSV once, when it is received). ``CsvReader``
reads it piece by piece as it arrives or as it is read back from storage, holding no more than a
piece and one record in memory; the file as a whole is refused (``ImportFileError``) when it is
not UTF-8, not CSV, lacks a column, names one twice, or holds more rows than an import takes.

Rows are numbered as a spreadsheet shows them (the header is row 1); a blank line is no row: it
keeps its number but is neither imported nor counted. A row with more cells than the header, a
cell or a row beyond its bound is refused before any of it is read into a registration. Each row
is registered on its own under the idempotency key ``import:<file digest>:<row>``
(``register_rows``), so one bad row never blocks or half-writes the others, and importing the
same file again registers nothing twice (each row returns its first result).
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import re
import uuid
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import IO

from openpyxl import load_workbook
from pydantic import ValidationError

from contract.events.enrolment import Heir, RegistrationSource, WorkerPersonal
from services.enrolment.service import DuplicateNikError, EnrolmentService, Registration
from shared.bounds import ADDRESS_CHARS
from shared.decisions import RefusedError
from shared.eventstore.handler import Handled
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

# An import is stored as it arrives and run in chunks, so its size is bounded by the storage it
# takes (a million rows of about 160 bytes), not by the service's memory.
MAX_ROWS = 1_000_000
MAX_BYTES = 160 * 2**20
# Twice the longest column's own bound (the address): any longer cell is refused as it is, and
# a row holds the ten columns near their bounds, no more.
MAX_CELL_CHARS = 2 * ADDRESS_CHARS
MAX_ROW_CHARS = 4 * MAX_CELL_CHARS
# A record (a line, or the lines of a quoted cell) longer than this is no list's row: the file is
# refused rather than held in memory until the record ends.
MAX_RECORD_CHARS = 2**21
# The largest cell a record may hold while its row is still read (to be refused by its bound).
csv.field_size_limit(MAX_RECORD_CHARS)


class ImportFileError(ValueError):
    """The file as a whole cannot be read (encoding, header, size): nothing was registered."""


@dataclass(frozen=True)
class CsvRow:
    number: int  # the row as a spreadsheet numbers it: the header is row 1
    cells: dict[str, str]
    problems: tuple[str, ...] = ()  # the row's own shape: too many cells, or too long


@dataclass(frozen=True)
class RowResult:
    row: int
    outcome: str  # registered, already_registered, refused
    worker_id: uuid.UUID | None = None
    reasons: tuple[str, ...] = ()


class BatchDigest:
    """The digest a file's batch id is taken from, fed the file as it arrives: one batch per
    file and area, so the same file imported in another kelurahan is another batch."""

    def __init__(self, area: str) -> None:
        self._hash = hashlib.sha256(area.encode() + b"\n")

    def update(self, data: bytes) -> None:
        self._hash.update(data)

    @property
    def batch_id(self) -> str:
        return self._hash.hexdigest()[:16]


# The rest of a quoted cell up to its closing quote (a doubled quote is a quote in the cell).
_QUOTED_REST = re.compile(r'(?:[^"]|"")*"(?!")')


class _Lines:
    """The lines handed to the csv reader, refilled between reads: the reader never reaches the
    end of what it was given inside a record, so it reads on across pieces."""

    def __init__(self) -> None:
        self.pending: list[str] = []

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        if not self.pending:
            raise StopIteration
        return self.pending.pop()


class CsvReader:
    """The rows of a CSV list, fed piece by piece (``feed``, then ``close``): each piece's
    complete rows as soon as they are complete, the file refused whole at the first thing that
    makes it unreadable."""

    def __init__(self, keep_rows: bool = True) -> None:
        # Without ``keep_rows`` the file is only checked and its rows counted (as it arrives).
        self._keep_rows = keep_rows
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")()
        self._bytes = 0
        self._carry = ""  # text after the last line end (a line end may follow a '\r')
        self._record: list[str] = []  # the lines of a record whose quoted cell is still open
        self._record_chars = 0
        self._in_quotes = False
        self._lines = _Lines()
        self._reader: Iterator[list[str]] | None = None
        self._delimiter = ","
        self.header: list[str] | None = None
        self._number = 1  # the number of the last record read: the header is row 1
        self.rows = 0  # rows that are not blank

    def feed(self, data: bytes) -> list[CsvRow]:
        text = self._decoded(data, final=False)
        self._bytes += len(data)
        return self._read(text, final=False)

    def close(self) -> list[CsvRow]:
        """The last rows; the file refused when it ends inside a character or has no header."""
        rows = self._read(self._decoded(b"", final=True), final=True)
        if self.header is None:
            _check_header([])
        return rows

    def _decoded(self, data: bytes, final: bool) -> str:
        try:
            return self._decoder.decode(data, final)
        except UnicodeDecodeError as error:
            raise ImportFileError(
                f"the file is not UTF-8 (at byte {self._bytes + error.start}); save it as "
                "CSV UTF-8 and import again"
            ) from None

    def _read(self, text: str, final: bool) -> list[CsvRow]:
        lines = list(io.StringIO(self._carry + text, newline=""))
        self._carry = ""
        if lines and not final and not lines[-1].endswith("\n"):
            self._carry = lines.pop()
        if len(self._carry) > MAX_RECORD_CHARS:
            raise self._too_long()
        if self._reader is None and lines:
            first = lines[0]
            self._delimiter = ";" if first.count(";") > first.count(",") else ","
            self._reader = csv.reader(self._lines, delimiter=self._delimiter, strict=True)
        complete: list[str] = []
        for line in lines:
            if not self._in_quotes and '"' not in line:
                if not self._record:
                    complete.append(line)
                    continue
                self._record.append(line)
            else:
                self._in_quotes = _open_after(line, self._delimiter, self._in_quotes)
                self._record.append(line)
                self._record_chars += len(line)
                if self._record_chars > MAX_RECORD_CHARS:
                    raise self._too_long()
            if not self._in_quotes:
                complete += self._record
                self._record, self._record_chars = [], 0
        if final:
            complete += self._record
        return self._parsed(complete)

    def _parsed(self, lines: list[str]) -> list[CsvRow]:
        rows: list[CsvRow] = []
        if self._reader is None:
            return rows
        self._lines.pending = lines[::-1]
        try:
            for record in self._reader:
                if self.header is None:
                    self.header = [name.strip().lower() for name in record]
                    _check_header(self.header)
                    continue
                self._number += 1
                if not _blank(record):
                    self.rows += 1
                    if self.rows > MAX_ROWS:
                        raise ImportFileError(
                            f"the file has over {MAX_ROWS:,} rows; at most {MAX_ROWS:,} are "
                            "imported at once: split it; nothing was imported"
                        )
                    if self._keep_rows:
                        rows.append(_row(self._number, self.header, record))
        except csv.Error as error:
            line = getattr(self._reader, "line_num", 0)
            raise ImportFileError(
                f"line {line} is not valid CSV ({error}); nothing was imported"
            ) from None
        return rows

    def _too_long(self) -> ImportFileError:
        line = getattr(self._reader, "line_num", 0) + 1
        return ImportFileError(
            f"the record from line {line} runs over {MAX_RECORD_CHARS:,} characters (a quote "
            "never closed?); nothing was imported"
        )


def _open_after(line: str, delimiter: str, in_quotes: bool) -> bool:
    """Whether a quoted cell is still open at the end of ``line``, as the csv reader reads it:
    a quote opens a cell only at its start."""
    position = 0
    while position < len(line):
        if in_quotes:
            closing = _QUOTED_REST.match(line, position)
            if closing is None:
                return True
            in_quotes, position = False, closing.end()
        elif line.startswith('"', position):
            in_quotes, position = True, position + 1
            continue
        following = line.find(delimiter, position)
        if following < 0:
            return False
        position = following + 1
    return in_quotes


def _blank(record: list[str]) -> bool:
    return not any(cell.strip() for cell in record)


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
    if sum(map(len, record)) > MAX_ROW_CHARS:
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


XLSX_MAGIC = b"PK\x03\x04"  # a workbook is a zip archive


def xlsx_as_csv(workbook: IO[bytes], out: IO[str], max_chars: int) -> None:
    """The first sheet of a workbook as comma-separated CSV, numbers and dates as text (blank
    rows kept, so rows keep the numbers the sheet shows); refused when it is no workbook, or
    when its text is over ``max_chars`` (a small archive can unpack to a great deal)."""
    try:
        book = load_workbook(workbook, read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError):
        raise ImportFileError(
            "the file is not a readable XLSX workbook; nothing was imported"
        ) from None
    try:
        line = io.StringIO()
        writer = csv.writer(line, lineterminator="\n")
        written = 0
        for values in book.worksheets[0].iter_rows(values_only=True):
            writer.writerow([_cell(value) for value in values])
            written += line.tell()
            if written > max_chars:
                raise ImportFileError(
                    f"the workbook's first sheet holds over {max_chars:,} characters: split it; "
                    "nothing was imported"
                )
            out.write(line.getvalue())
            line.seek(0)
            line.truncate()
    finally:
        book.close()


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


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


async def register_rows(
    service: EnrolmentService,
    rows: Sequence[CsvRow],
    batch_id: str,
    actor_id: str,
    correlation: uuid.UUID,
    scope: AreaScope,
) -> list[RowResult]:
    """Register a chunk of rows in one transaction, a result per row in their order. Each row
    under the key ``import:<batch>:<row>``: a row registered before (by an import stopped
    midway, say) answers already_registered; a row refused (its shape, its area, its fields,
    the rules, a NIK registered) is refused alone and the others register."""
    results: dict[int, RowResult] = {}
    registrations: list[tuple[Registration, CommandContext]] = []
    numbers: list[int] = []
    for row in rows:
        try:
            registration = _registration_of(row, batch_id, scope)
        except ValueError as error:
            results[row.number] = RowResult(row.number, "refused", reasons=_reasons(error))
            continue
        key = f"import:{batch_id}:{row.number}"
        context = CommandContext(actor_id, "kelurahan_officer", correlation, idempotency_key=key)
        registrations.append((registration, context))
        numbers.append(row.number)
    outcomes = await service.register_many(registrations) if registrations else []
    for number, outcome in zip(numbers, outcomes, strict=True):
        results[number] = _row_result(number, outcome, scope)
    return [results[row.number] for row in rows]


def _registration_of(row: CsvRow, batch_id: str, scope: AreaScope) -> Registration:
    """The row's registration, or ValueError naming every problem found before the rules."""
    if row.problems:
        raise ValueError("; ".join(row.problems))
    kelurahan = row.cells.get("kelurahan_code", "")
    if not scope.allows(kelurahan):
        raise ValueError(f"kelurahan_code: {kelurahan!r} is outside {scope.area}")
    return registration_from(row.cells, batch_id, row.number)


def _reasons(error: Exception) -> tuple[str, ...]:
    if isinstance(error, RefusedError):
        return tuple(str(p) for p in error.problems)
    return tuple(str(error).split("; "))


def _row_result(
    number: int, outcome: tuple[uuid.UUID, Handled] | Exception, scope: AreaScope
) -> RowResult:
    if isinstance(outcome, DuplicateNikError):
        seen = outcome.seen_by(scope)
        return RowResult(number, "refused", seen.worker_id, (str(seen),))
    if isinstance(outcome, Exception):
        return RowResult(number, "refused", reasons=_reasons(outcome))
    worker_id, handled = outcome
    return RowResult(number, "already_registered" if handled.replayed else "registered", worker_id)
