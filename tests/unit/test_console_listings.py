"""Every listing screen is served by one function: the download of the table asked for (whole,
CSV or XLSX), or the page with each table at its page; a table the service pages keeps the
service's count; a download of a table the page does not have is refused."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import HTTPException
from fastapi.responses import HTMLResponse

from services.console.listings import Asked, Table, listing_page
from services.console.sessions import Session
from shared.auth import Principal

pytestmark = pytest.mark.unit
SESSION = Session(Principal("ana", "auditor", None), "token", "csrf", "id", 0.0, 0.0)
LONG = Table("lag", "Lag", ["N"], [[str(n)] for n in range(60)], filename="tertinggal")
PAGED = Table(
    "cases", "Cases", ["N"], [{"n": n} for n in range(25)], cells=lambda c: [str(c["n"])], total=80
)


class Drawn:
    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def __call__(self, name: str, *shown: Any, **values: Any) -> HTMLResponse:
        # As the console's render is called: the session, its language and the status.
        status = shown[2]
        self.values = {"template": name, "status": status, **values}
        return HTMLResponse(name, status)


def test_a_page_shows_each_table_at_its_page_and_keeps_what_the_pager_links_ask() -> None:
    drawn = Drawn()
    listing_page(
        drawn, SESSION, Asked(3, None, "lag"), "t.html.j2", [LONG, PAGED], {"on": "x"}, 422, extra=1
    )
    lag, cases = drawn.values["tables"]["lag"], drawn.values["tables"]["cases"]
    assert (lag.page, lag.pages, lag.total, lag.rows[0]) == (3, 3, 60, ["50"])
    assert lag.query == "on=x&table=lag"
    assert (cases.page, cases.pages, cases.total) == (1, 4, 80)  # the pager asked for the other
    assert (drawn.values["status"], drawn.values["extra"]) == (422, 1)


def test_a_download_is_the_whole_table_asked_for_and_nothing_is_drawn() -> None:
    drawn = Drawn()
    sheet = listing_page(drawn, SESSION, Asked(2, "csv", "lag"), "t.html.j2", [PAGED, LONG])
    assert drawn.values == {}
    assert sheet.headers["content-disposition"].endswith('filename="tertinggal.csv"')
    assert len(bytes(sheet.body).decode("utf-8-sig").splitlines()) == 61
    only = listing_page(drawn, SESSION, Asked(1, "xlsx"), "t.html.j2", [PAGED])
    assert bytes(only.body).startswith(b"PK")
    with pytest.raises(HTTPException) as refused:
        listing_page(drawn, SESSION, Asked(1, "csv", "other"), "t.html.j2", [LONG])
    assert refused.value.status_code == 404
