"""A listing as the user sees it, downloaded as CSV (UTF-8 with a BOM, so spreadsheets open it
in the right encoding) or XLSX."""

from __future__ import annotations

import csv
import io
from typing import Literal

from fastapi.responses import Response
from openpyxl import Workbook

MEDIA = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def table_bytes(header: list[str], rows: list[list[str]], kind: Literal["csv", "xlsx"]) -> bytes:
    if kind == "csv":
        text = io.StringIO()
        writer = csv.writer(text)
        writer.writerow(header)
        writer.writerows(rows)
        return b"\xef\xbb\xbf" + text.getvalue().encode()
    book = Workbook(write_only=True)
    sheet = book.create_sheet()
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def download(
    header: list[str], rows: list[list[str]], kind: Literal["csv", "xlsx"], name: str
) -> Response:
    return Response(
        table_bytes(header, rows, kind),
        media_type=MEDIA[kind],
        headers={"Content-Disposition": f'attachment; filename="{name}.{kind}"'},
    )
