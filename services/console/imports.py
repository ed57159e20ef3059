"""A kelurahan's list as spreadsheets save it, turned into the CSV the enrolment service reads:
comma or semicolon separated, UTF-8 with or without a byte order mark, or an XLSX workbook
(its first sheet). Only the format changes; the service judges every row."""

from __future__ import annotations

import csv
import io
import zipfile
from datetime import date, datetime

from openpyxl import load_workbook

from services.console.refusals import N_

MAX_UPLOAD_BYTES = 16 * 2**20
MAX_ROWS = 100_000


class UnreadableListError(ValueError):
    def __init__(self, message: str, **values: object) -> None:
        super().__init__(message % values)
        self.message = message
        self.values = values


def as_service_csv(filename: str, raw: bytes) -> bytes:
    if len(raw) > MAX_UPLOAD_BYTES:
        raise UnreadableListError(
            N_("The file is over %(limit)s MB: split it."), limit=MAX_UPLOAD_BYTES // 2**20
        )
    if not raw:
        raise UnreadableListError(N_("The file is empty."))
    if raw.startswith(b"PK") or filename.lower().endswith(".xlsx"):
        rows = _xlsx_rows(raw)
    else:
        rows = _csv_rows(raw)
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode()


def _csv_rows(raw: bytes) -> list[list[str]]:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UnreadableListError(N_("The file is not UTF-8: save it as CSV UTF-8.")) from None
    first = text.split("\n", 1)[0]
    delimiter = ";" if first.count(";") > first.count(",") else ","
    rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    if len(rows) > MAX_ROWS + 1:
        raise UnreadableListError(N_("More than %(rows)s rows: split the file."), rows=MAX_ROWS)
    return rows


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


def _xlsx_rows(raw: bytes) -> list[list[str]]:
    try:
        book = load_workbook(io.BytesIO(raw), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError):
        raise UnreadableListError(N_("The file is not a readable XLSX workbook.")) from None
    sheet = book.worksheets[0]
    rows: list[list[str]] = []
    for values in sheet.iter_rows(values_only=True):
        if len(rows) > MAX_ROWS:
            raise UnreadableListError(N_("More than %(rows)s rows: split the file."), rows=MAX_ROWS)
        cells = [_cell(v) for v in values]
        if any(cells):
            rows.append(cells)
    book.close()
    return rows
