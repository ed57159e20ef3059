"""A kelurahan's list passed on to the enrolment service as it was saved (CSV, comma or
semicolon, UTF-8 with or without a byte order mark, or an XLSX workbook): the service reads and
judges it, in one place, and answers with an import job whose progress the console shows."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import UploadFile

from services.console.refusals import N_

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
# The service's own bound on a list (it refuses a larger one as it arrives, too).
MAX_UPLOAD_BYTES = 160 * 2**20
PIECE_BYTES = 2**20  # read from the upload, spooled to disk, and sent on at a time
# While a job runs, its page asks again this often (a refresh, no script).
REFRESH_SECONDS = 2


class UnreadableListError(ValueError):
    def __init__(self, message: str, **values: object) -> None:
        super().__init__(message % values)
        self.message = message
        self.values = values


def media_type(upload: UploadFile) -> str:
    """What the service is told the list is: a workbook by its name or type, else CSV."""
    named = (upload.filename or "").lower().endswith(".xlsx")
    return XLSX if named or upload.content_type == XLSX else "text/csv"


async def first_piece(upload: UploadFile) -> bytes:
    """The upload's first piece; refused when the file is empty or over the bound."""
    if (upload.size or 0) > MAX_UPLOAD_BYTES:
        raise UnreadableListError(
            N_("The file is over %(limit)s MB: split it."), limit=MAX_UPLOAD_BYTES // 2**20
        )
    piece = await upload.read(PIECE_BYTES)
    if not piece:
        raise UnreadableListError(N_("The file is empty."))
    return piece


async def pieces(upload: UploadFile, first: bytes) -> AsyncIterator[bytes]:
    """The upload streamed on, a piece at a time, never read whole."""
    yield first
    while piece := await upload.read(PIECE_BYTES):
        yield piece
