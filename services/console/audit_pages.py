"""The auditor's pages: the report's figures with their charts, the programme as true on a day,
a worker's history with each event's fields in words, the topics' hash chains checked, and the
topics' positions, lag and dead letters. Each page is drawn from the audit application's API
(``berlian audit web``, ``services/audit/web.py``), called with the signed-in user's token; the
console only names what it answers. Every table pages and downloads what it lists."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal, Protocol
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response

from services.console import exports
from services.console.audit_charts import Chart, bar_chart
from services.console.audit_words import Words, flat
from services.console.client import Answer, Services
from services.console.i18n import JAKARTA, Language, instant, long_date, translations
from services.console.refusals import N_, translated
from services.console.sessions import Session
from services.console.typed import iso_date

ALLOWED_ROLES = ("auditor", "city_admin")
PAGE_SIZE = 25
# A rebuild from the topics can take minutes on a large log: the audit application is waited
# for longer than the other services.
REBUILD_SECONDS = 300.0
# A history downloaded whole, in the API's pages, up to this many events.
MAX_DOWNLOADED = 2000
HISTORY_PAGE = 500
Export = Literal["csv", "xlsx"] | None
Page = Annotated[int, Query(ge=1, le=1000)]
# Which table of the page its pager and download links mean.
Chosen = Annotated[str, Query(max_length=20, pattern=r"^[a-z-]*$")]
# The report's figures: their tables' names, the columns naming a row, those holding rupiah,
# and what each chart draws (the value columns), by the audit application's question.
REPORT_FIGURES: Mapping[str, tuple[str, str, int, frozenset[str], tuple[str, ...]]] = {
    "covered workers per month by cohort": (
        "coverage",
        N_("Covered workers per month by cohort"),
        2,
        frozenset(),
        (),
    ),
    "premiums against the budget": (
        "premiums",
        N_("Premiums invoiced, paid on time, paid late and unpaid against the budget"),
        1,
        frozenset({"budget", "invoiced", "paid_on_time", "paid_late", "unpaid"}),
        ("budget", "invoiced", "paid_on_time", "paid_late", "unpaid"),
    ),
    "claims filed, decided and paid": (
        "claims",
        N_("Claims filed, decided and paid"),
        2,
        frozenset({"approved_amount", "paid_amount"}),
        ("filed", "approved", "rejected", "pending", "paid"),
    ),
    "loss ratio": (
        "loss-ratio",
        N_("Loss ratio"),
        0,
        frozenset({"claims_paid", "premiums_paid"}),
        (),
    ),
}
PROGRAMME_FIGURES: Mapping[str, tuple[str, str, frozenset[str]]] = {
    "workers by status and cohort": ("workers", N_("Workers by status and cohort"), frozenset()),
    "premiums due and paid": (
        "premiums",
        N_("Premiums invoiced, paid and in arrears"),
        frozenset({"invoiced", "paid", "arrears"}),
    ),
    "claims open and decided": (
        "claims",
        N_("Claims by status and benefit"),
        frozenset({"amount"}),
    ),
}
SERVICE_NAMES = {
    "enrolment": N_("Enrolment"),
    "verification": N_("Verification"),
    "billing": N_("Billing"),
    "claims": N_("Claims"),
}
FINDING_NAMES = {
    "hash_mismatch": N_("altered: the content does not match its hash"),
    "broken_link": N_("broken link to the previous event"),
    "gap": N_("missing versions: deleted"),
    "out_of_order": N_("out of order"),
    "conflicting_version": N_("two events claim one version"),
    "unreadable": N_("not an event"),
}


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
class Table:
    """A listing as the page shows it: each cell text, or labelled pairs (an event's data)."""

    name: str
    caption: str
    header: list[str]
    rows: list[list[Any]]
    numeric: frozenset[int] = frozenset()


@dataclass(frozen=True)
class Shown:
    """The page of a table that is shown, and where its pager leads."""

    table: Table
    rows: list[list[Any]]
    page: int
    pages: int
    query: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def shown(table: Table, chosen: str, page: int, query: Mapping[str, str]) -> Shown:
    """``table`` at ``page`` if it is the table the pager asked for, else at its first page."""
    at = page if table.name == chosen else 1
    pages = max(1, -(-len(table.rows) // PAGE_SIZE))
    at = min(at, pages)
    rows = table.rows[(at - 1) * PAGE_SIZE : at * PAGE_SIZE]
    return Shown(table, rows, at, pages, urlencode({**query, "table": table.name}))


def download(table: Table, kind: Literal["csv", "xlsx"]) -> Response:
    return exports.download(
        table.header, [[flat(cell) for cell in row] for row in table.rows], kind, table.name
    )


def chosen_table(tables: Sequence[Table], name: str, export: Export) -> Response | None:
    """The download of the table named, when one is asked for."""
    if export is None:
        return None
    for table in tables:
        if table.name == name:
            return download(table, export)
    raise HTTPException(404, N_("There is no such table on this page."))


def figure_table(
    name: str, caption: str, figure: Mapping[str, Any], money: frozenset[str], words: Words
) -> Table:
    columns = list(figure["columns"])
    rows = [
        [words.cell(c, v, c in money) for c, v in zip(columns, row, strict=True)]
        for row in figure["rows"]
    ]
    numeric = frozenset(
        i
        for i, c in enumerate(columns)
        if all(isinstance(r[i], int | float) for r in figure["rows"])
    )
    return Table(name, caption, [words.column(c) for c in columns], rows, numeric)


def offsets_table(offsets: Sequence[Mapping[str, Any]], words: Words) -> Table:
    _ = words.language.gettext
    return Table(
        "offsets",
        _("How far each topic partition was read"),
        [_("Topic"), _("Partition"), _("End offset")],
        [[o["topic"], str(o["partition"]), words.count(o["end_offset"])] for o in offsets],
        frozenset({1, 2}),
    )


def report_chart(
    key: str, title: str, figure: Mapping[str, Any], naming: int, drawn: Sequence[str], words: Words
) -> Chart | None:
    """The figure drawn: a group per row, named by its first ``naming`` columns; for covered
    workers per month, a group per month and a bar per cohort."""
    _ = words.language.gettext
    columns = list(figure["columns"])
    rows = figure["rows"]
    if key == "coverage":
        months = sorted({r[0] for r in rows})
        cohorts = sorted({r[1] for r in rows})
        count = {(r[0], r[1]): r[2] for r in rows}
        values = [[float(count.get((m, c), 0)) for c in cohorts] for m in months]
        series = [words.value("cohort", c) for c in cohorts]
        return bar_chart(
            key,
            title,
            _("Covered workers in each month of the year, a bar per cohort."),
            [words.month(m) for m in months],
            series,
            values,
            words.count,
        )
    if not drawn or not rows:
        return None
    at = [columns.index(c) for c in drawn]
    groups = [
        " ".join(words.cell(c, v, False) for c, v in zip(columns, r[:naming], strict=False))
        for r in rows
    ]
    money = key == "premiums"
    return bar_chart(
        key,
        title,
        _("A group of bars per row of the table below, a bar per column: %(columns)s.")
        % {"columns": ", ".join(words.column(c) for c in drawn)},
        groups,
        [words.column(c) for c in drawn],
        [[float(r[i] or 0) for i in at] for r in rows],
        (lambda v: words.money(v)) if money else words.count,
    )


def history_table(events: Sequence[Mapping[str, Any]], words: Words) -> Table:
    _ = words.language.gettext
    rows = []
    for e in events:
        arrears = e["standing"]["arrears"]
        standing = words.standing(e["standing"]["status"])
        if arrears:
            standing += " · " + _("months unpaid: %(months)s") % {"months": ", ".join(arrears)}
        rows.append(
            [
                instant(e["recorded_at"], words.lang),
                words.event(e["event_type"]),
                f"{words.role(e['actor_role'])} ({e['actor_id']})",
                e["policy_version"] or "–",
                long_date(e["on"], words.lang),
                standing,
                words.fields(e["details"]),
                f"{e['topic']} / {e['partition']} / {e['offset']}",
            ]
        )
    header = [
        _("Recorded"),
        _("Event"),
        _("By"),
        _("Policy version"),
        _("The day it is about"),
        _("Standing after it"),
        _("Details"),
        _("Topic / partition / offset"),
    ]
    return Table(
        "history", _("Events about the worker, in the order they were recorded"), header, rows
    )


def router(
    render: Render, signed_in: Callable[[str | None], Session], services: Services, cookie: str
) -> APIRouter:
    """The pages under /audit; ``signed_in`` finds the session by the ``cookie`` named."""
    pages = APIRouter(prefix="/audit")

    def auditor(request: Request) -> tuple[Session, Words]:
        session = signed_in(request.cookies.get(cookie))
        if session.principal.role not in ALLOWED_ROLES:
            raise HTTPException(403, N_("Your role may not use this page."))
        return session, Words(translations(session.language), session.language)

    async def asked(session: Session, path: str, **params: Any) -> Any:
        answer = await services.call(
            "audit", "GET", path, session.token, params=params, timeout=REBUILD_SECONDS
        )
        if not answer.ok:
            raise HTTPException(answer.status, answer.detail)
        return answer.body

    def listing_page(
        name: str,
        session: Session,
        tables: Sequence[Table],
        chosen: str,
        page: int,
        query: Mapping[str, str],
        **values: Any,
    ) -> HTMLResponse:
        return render(
            name,
            session,
            session.language,
            tables={t.name: shown(t, chosen, page, query) for t in tables},
            **values,
        )

    @pages.get("", response_class=Response)
    async def dashboard(
        request: Request,
        year: Annotated[int, Query(ge=2022, le=2100)] = 2024,
        table: Chosen = "",
        page: Page = 1,
        export: Export = None,
    ) -> Response:
        session, words = auditor(request)
        report = await asked(session, f"/reports/{year}")
        figures = {f["question"]: f for f in report["figures"]}
        tables, charts, queries = [], [], []
        for question, (key, title, naming, money, drawn) in REPORT_FIGURES.items():
            caption = words.language.gettext(title)
            queries.append((caption, figures[question]["query"]))
            tables.append(figure_table(key, caption, figures[question], money, words))
            chart = report_chart(key, caption, figures[question], naming, drawn, words)
            if chart is not None:
                charts.append(chart)
        tables.append(offsets_table(report["offsets"], words))
        downloaded = chosen_table(tables, table, export)
        if downloaded is not None:
            return downloaded
        ratio = report["loss_ratio"]
        return listing_page(
            "audit/dashboard.html.j2",
            session,
            tables,
            table,
            page,
            {"year": str(year)},
            year=year,
            report=report,
            charts={c.key: c for c in charts},
            reproduced=queries,
            loss_ratio=None if ratio is None else words.ratio(ratio),
        )

    @pages.get("/programme", response_class=Response)
    async def programme(
        request: Request,
        on: Annotated[str, Query(max_length=10)] = "",
        table: Chosen = "",
        page: Page = 1,
        export: Export = None,
    ) -> Response:
        session, words = auditor(request)
        typed = on.strip()
        day = iso_date(typed) if typed else datetime.now(JAKARTA).date().isoformat()
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", day):
            raise HTTPException(422, N_("Write the day as day-month-year, such as 18-11-2024."))
        state = await asked(session, "/programme", on=day)
        figures = {f["question"]: f for f in state["figures"]}
        tables = [
            figure_table(key, words.language.gettext(title), figures[question], money, words)
            for question, (key, title, money) in PROGRAMME_FIGURES.items()
        ]
        tables.append(offsets_table(state["offsets"], words))
        downloaded = chosen_table(tables, table, export)
        if downloaded is not None:
            return downloaded
        return listing_page(
            "audit/programme.html.j2",
            session,
            tables,
            table,
            page,
            {"on": typed},
            day=state["true_on"],
            typed_on=typed,
        )

    async def worker_named(session: Session, query: str, words: Words) -> tuple[uuid.UUID, Any]:
        """The worker by NIK or id, as the enrolment service shows them to this user."""
        if re.fullmatch(r"[0-9]{16}", query):
            found = await services.call(
                "enrolment", "GET", "/workers", session.token, params={"nik": query}
            )
            if not found.ok:
                raise HTTPException(found.status, translated(found.detail, words.language))
            if not found.body:
                raise HTTPException(404, N_("No worker has this NIK."))
            return uuid.UUID(found.body[0]["worker_id"]), found.body[0]
        try:
            worker_id = uuid.UUID(query)
        except ValueError:
            raise HTTPException(
                422, N_("Type a worker's id, or their 16-digit NIK if your role may see it.")
            ) from None
        seen: Answer = await services.call(
            "enrolment", "GET", f"/workers/{worker_id}", session.token
        )
        return worker_id, seen.body if seen.ok else None

    @pages.get("/workers", response_class=Response)
    async def history(
        request: Request,
        q: Annotated[str, Query(max_length=64)] = "",
        page: Page = 1,
        table: Chosen = "",
        export: Export = None,
    ) -> Response:
        session, words = auditor(request)
        query = q.strip()
        if not query:
            return render("audit/history.html.j2", session, session.language, query="", worker=None)
        worker_id, worker = await worker_named(session, query, words)
        path = f"/workers/{worker_id}/history"
        if export is not None:
            events: list[Any] = []
            while len(events) < MAX_DOWNLOADED:
                answer = await asked(session, path, offset=len(events), limit=HISTORY_PAGE)
                events += answer["events"]
                if not answer["events"] or len(events) >= answer["total"]:
                    break
            return download(history_table(events, words), export)
        answer = await asked(session, path, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE)
        listed = history_table(answer["events"], words)
        pages_in_all = max(1, -(-answer["total"] // PAGE_SIZE))
        return render(
            "audit/history.html.j2",
            session,
            session.language,
            query=query,
            worker_id=worker_id,
            worker=worker,
            history=Shown(listed, listed.rows, page, pages_in_all, urlencode({"q": query})),
            total=answer["total"],
        )

    @pages.get("/verification", response_class=Response)
    async def verification(
        request: Request, table: Chosen = "", page: Page = 1, export: Export = None
    ) -> Response:
        session, words = auditor(request)
        _ = words.language.gettext
        checked = await asked(session, "/verification")
        topics = Table(
            "topics",
            _("Each topic's events and what was found"),
            [_("Topic"), _("Events"), _("Copies of the same event"), _("Findings")],
            [
                [
                    t["topic"],
                    words.count(t["events"]),
                    words.count(t["duplicates"]),
                    words.count(sum(t["findings"].values())),
                ]
                for t in checked["topics"]
            ],
            frozenset({1, 2, 3}),
        )
        findings = Table(
            "findings",
            _("What was found, in the order of the log"),
            [_("Finding"), _("Topic / partition / offset"), _("Stream and version"), _("Detail")],
            [
                [
                    _(FINDING_NAMES[f["kind"]]) if f["kind"] in FINDING_NAMES else f["kind"],
                    f"{f['topic']} / {f['partition']} / {f['offset']}",
                    f"{f['stream_id'] or '–'} v{f['stream_version'] or '–'}",
                    f["detail"],
                ]
                for f in checked["findings"]
            ],
        )
        downloaded = chosen_table([topics, findings], table, export)
        if downloaded is not None:
            return downloaded
        return listing_page(
            "audit/verification.html.j2",
            session,
            [topics, findings],
            table,
            page,
            {},
            checked=checked,
        )

    @pages.get("/operations", response_class=Response)
    async def operations(
        request: Request, table: Chosen = "", page: Page = 1, export: Export = None
    ) -> Response:
        session, words = auditor(request)
        _ = words.language.gettext
        found = await asked(session, "/operations")

        def service(name: str) -> str:
            return _(SERVICE_NAMES[name]) if name in SERVICE_NAMES else name

        tables = [
            Table(
                "topics",
                _("Each topic partition's end offset"),
                [_("Topic"), _("Partition"), _("End offset")],
                [
                    [t["topic"], str(t["partition"]), words.count(t["end_offset"])]
                    for t in found["topics"]
                ],
                frozenset({1, 2}),
            ),
            Table(
                "lag",
                _("Each projection's position and how far it is behind"),
                [
                    _("Service"),
                    _("Projection"),
                    _("Topic"),
                    _("Partition"),
                    _("Next offset"),
                    _("Behind by"),
                ],
                [
                    [
                        service(p["service"]),
                        p["projection"],
                        p["topic"],
                        str(p["partition"]),
                        words.count(p["next_offset"]),
                        words.count(p["lag"]),
                    ]
                    for p in found["projections"]
                ],
                frozenset({3, 4, 5}),
            ),
            Table(
                "dead-letters",
                _("Records set aside and not yet re-driven"),
                [_("Service"), _("Consumer"), _("Reason"), _("Records")],
                [
                    [service(d["service"]), d["consumer"], d["reason"], words.count(d["records"])]
                    for d in found["dead_letters"]
                ],
                frozenset({3}),
            ),
        ]
        downloaded = chosen_table(tables, table, export)
        if downloaded is not None:
            return downloaded
        return listing_page("audit/operations.html.j2", session, tables, table, page, {})

    return pages
