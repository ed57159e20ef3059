"""A listing as the user sees it, downloaded as CSV (UTF-8 with a BOM, so spreadsheets open it
in the right encoding) or XLSX."""

from __future__ import annotations

import csv
import io
from typing import Literal

from fastapi.responses import Response
from fpdf import FPDF
from fpdf.fonts import FontFace
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


def annex_pdf(title: str, decree: str, header: list[str], rows: list[list[str]]) -> bytes:
    """The decree's annex, ready to sign: a numbered table under the decree's reference, with
    room for the signature on the last page."""
    pdf = FPDF(orientation="landscape", format="A4")
    pdf.set_title(title)
    pdf.add_page()
    pdf.set_font("helvetica", "B", 13)
    pdf.multi_cell(0, 7, title, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("helvetica", size=10)
    if decree:
        pdf.multi_cell(0, 6, decree, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    pdf.set_font("helvetica", size=9)
    with pdf.table(
        col_widths=(8, 50, 34, 36, 36, 14, 34), headings_style=FontFace(emphasis="BOLD")
    ) as table:
        for values in [header, *rows]:
            row = table.row()
            for value in values:
                row.cell(value)
    pdf.ln(12)
    pdf.cell(0, 6, "Wali Kota Pekalongan", align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(18)
    pdf.cell(0, 6, "(.................................)", align="R")
    return bytes(pdf.output())
