"""Every listing screen of the console, served one way: what the request asks (a page, or the
download of one of the page's tables as CSV or XLSX) read by one dependency, and the page drawn
or the table downloaded by ``listing_page``. A route only fetches its tables and names its
template."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Protocol
from urllib.parse import urlencode

from fastapi import Depends, HTTPException, Query
from fastapi.responses import HTMLResponse, Response

from services.console import exports
from services.console.audit_words import flat
from services.console.i18n import Language
from services.console.refusals import N_
from services.console.sessions import Session

Export = Literal["csv", "xlsx"]
PAGE_SIZE = 25
# How far into a listing its service pages (the services bound their offsets to this).
MAX_OFFSET = 100_000
# The deepest page asked for: the last one whose rows a service still pages to.
MAX_PAGE = MAX_OFFSET // PAGE_SIZE + 1


class Render(Protocol):
    def __call__(
        self,
        name: str,
        session: Session | None,
        language: Language,
        status: int = 200,
        **values: Any,
    ) -> HTMLResponse: ...


@dataclass(frozen=True)
class Asked:
    """What a listing's request asks for: a page, or a download, of the table named."""

    page: int = 1
    export: Export | None = None
    # Which table of the page the pager or the download means ("": the page's first).
    table: str = ""


# What a page drawn again after a form asks for, unless the form says which page it was on.
FIRST_PAGE = Asked()


def asked_for(
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
    export: Annotated[Export | None, Query()] = None,
    table: Annotated[str, Query(max_length=20, pattern=r"^[a-z-]*$")] = "",
) -> Asked:
    return Asked(page, export, table)


Asking = Annotated[Asked, Depends(asked_for)]


def cells_of(row: Any) -> list[str]:
    """A row already in cells (text, or labelled pairs), as a download's text."""
    return [flat(cell) for cell in row]


@dataclass(frozen=True)
class Table:
    """A listing as the page shows it: its rows (cells, or the service's items the template
    draws), the download's columns and how a row is written in it. ``total`` is set when the
    service paged it: ``rows`` is then the page asked for (or all of it, to download)."""

    name: str
    caption: str
    header: list[str]
    rows: Sequence[Any]
    numeric: frozenset[int] = frozenset()
    cells: Callable[[Any], list[str]] = cells_of
    total: int | None = None
    filename: str = ""


@dataclass(frozen=True)
class Shown:
    """The page of a table that is shown, and where its pager leads."""

    table: Table
    rows: Sequence[Any]
    page: int
    pages: int
    total: int
    query: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def pages_of(total: int) -> int:
    return max(1, -(-total // PAGE_SIZE))


def shown(table: Table, chosen: str, page: int, query: Mapping[str, str]) -> Shown:
    """``table`` at ``page`` if it is the table the pager asked for (or the page has no other),
    else at its first page."""
    at = page if table.name == chosen or not chosen else 1
    link = urlencode({**query, "table": table.name})
    if table.total is not None:
        return Shown(table, table.rows, at, pages_of(table.total), table.total, link)
    pages = pages_of(len(table.rows))
    at = min(at, pages)
    rows = table.rows[(at - 1) * PAGE_SIZE : at * PAGE_SIZE]
    return Shown(table, rows, at, pages, len(table.rows), link)


def download(table: Table, kind: Export) -> Response:
    return exports.download(
        table.header, [table.cells(row) for row in table.rows], kind, table.filename or table.name
    )


def listing_page(
    render: Render,
    session: Session,
    asked: Asked,
    template: str,
    tables: Sequence[Table],
    linked: Mapping[str, str] | None = None,
    status: int = 200,
    **values: Any,
) -> Response:
    """The download of the table asked for, or the page with each table at its page (as
    ``tables``, by name, in the template; ``linked`` is what its pager's links ask again)."""
    if asked.export is not None:
        for table in tables:
            if table.name == (asked.table or tables[0].name):
                return download(table, asked.export)
        raise HTTPException(404, N_("There is no such table on this page."))
    return render(
        template,
        session,
        session.language,
        status,
        tables={t.name: shown(t, asked.table, asked.page, linked or {}) for t in tables},
        **values,
    )
