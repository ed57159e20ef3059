"""The auditor's pages: the report's figures with their charts, the programme as true on a day,
a worker's history with each event's fields in words, the topics' hash chains checked, and the
topics' positions, lag and dead letters. Each page is drawn from the audit application's API
(``berlian audit web``, ``services/audit/web.py``), called with the signed-in user's token; the
console only names what it answers. Every table pages and downloads what it lists."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import Response

from services.console.audit_charts import Chart, bar_chart
from services.console.audit_words import Words
from services.console.client import Answer, Services
from services.console.i18n import instant, long_date, translations
from services.console.listings import PAGE_SIZE, Asking, Render, Table, listing_page
from services.console.refusals import N_, translated
from services.console.sessions import PageSession, Session
from services.console.typed import day_or_today

ALLOWED_ROLES = ("auditor", "city_admin")
# A rebuild from the topics can take minutes on a large log: the audit application is waited
# for longer than the other services.
REBUILD_SECONDS = 300.0
# A history downloaded whole, in the API's pages, up to this many events.
MAX_DOWNLOADED = 2000
HISTORY_PAGE = 500
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


def history_table(events: Sequence[Mapping[str, Any]], words: Words, total: int) -> Table:
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
        "history",
        _("Events about the worker, in the order they were recorded"),
        header,
        rows,
        total=total,
    )


def auditor(session: PageSession) -> tuple[Session, Words]:
    """The auditor's (or the city administrator's) session, with its words."""
    if session.principal.role not in ALLOWED_ROLES:
        raise HTTPException(403, N_("Your role may not use this page."))
    return session, Words(translations(session.language), session.language)


Auditing = Annotated[tuple[Session, Words], Depends(auditor)]


def router(render: Render, services: Services) -> APIRouter:
    """The pages under /audit."""
    pages = APIRouter(prefix="/audit")

    async def called(session: Session, path: str, **params: Any) -> Any:
        answer = await services.call(
            "audit", "GET", path, session.token, params=params, timeout=REBUILD_SECONDS
        )
        if not answer.ok:
            raise HTTPException(answer.status, answer.detail)
        return answer.body

    @pages.get("", response_class=Response)
    async def dashboard(
        seen: Auditing,
        asked: Asking,
        year: Annotated[int, Query(ge=2022, le=2100)] = 2024,
    ) -> Response:
        session, words = seen
        report = await called(session, f"/reports/{year}")
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
        ratio = report["loss_ratio"]
        return listing_page(
            render,
            session,
            asked,
            "audit/dashboard.html.j2",
            tables,
            {"year": str(year)},
            year=year,
            report=report,
            charts={c.key: c for c in charts},
            reproduced=queries,
            loss_ratio=None if ratio is None else words.ratio(ratio),
        )

    @pages.get("/programme", response_class=Response)
    async def programme(
        seen: Auditing,
        asked: Asking,
        on: Annotated[str, Query(max_length=10)] = "",
    ) -> Response:
        session, words = seen
        typed = on.strip()
        day = day_or_today(typed)
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", day):
            raise HTTPException(422, N_("Write the day as day-month-year, such as 18-11-2024."))
        state = await called(session, "/programme", on=day)
        figures = {f["question"]: f for f in state["figures"]}
        tables = [
            figure_table(key, words.language.gettext(title), figures[question], money, words)
            for question, (key, title, money) in PROGRAMME_FIGURES.items()
        ]
        tables.append(offsets_table(state["offsets"], words))
        return listing_page(
            render,
            session,
            asked,
            "audit/programme.html.j2",
            tables,
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
        seen: Auditing,
        asked: Asking,
        q: Annotated[str, Query(max_length=64)] = "",
    ) -> Response:
        session, words = seen
        query = q.strip()
        if not query:
            return render("audit/history.html.j2", session, session.language, query="", worker=None)
        worker_id, worker = await worker_named(session, query, words)
        path = f"/workers/{worker_id}/history"
        # A download is the whole history (in the API's pages, up to MAX_DOWNLOADED), a page
        # only its events.
        events: list[Any] = []
        offset, wanted = (0, MAX_DOWNLOADED) if asked.export else ((asked.page - 1) * PAGE_SIZE, 1)
        while len(events) < wanted:
            answer = await called(
                session,
                path,
                offset=offset + len(events),
                limit=HISTORY_PAGE if asked.export else PAGE_SIZE,
            )
            events += answer["events"]
            if not asked.export or not answer["events"] or len(events) >= answer["total"]:
                break
        return listing_page(
            render,
            session,
            asked,
            "audit/history.html.j2",
            [history_table(events, words, answer["total"])],
            {"q": query},
            query=query,
            worker_id=worker_id,
            worker=worker,
        )

    @pages.get("/verification", response_class=Response)
    async def verification(seen: Auditing, asked: Asking) -> Response:
        session, words = seen
        _ = words.language.gettext
        checked = await called(session, "/verification")
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
        return listing_page(
            render,
            session,
            asked,
            "audit/verification.html.j2",
            [topics, findings],
            checked=checked,
        )

    @pages.get("/operations", response_class=Response)
    async def operations(seen: Auditing, asked: Asking) -> Response:
        session, words = seen
        _ = words.language.gettext
        found = await called(session, "/operations")

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
        return listing_page(render, session, asked, "audit/operations.html.j2", tables)

    return pages
