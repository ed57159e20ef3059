"""``audit report --fiscal-year Y``: the year's programme in figures, as an HTML page with
charts. Each figure carries the query that produced it; the page names the moment it was known
at and the topic offsets read, so another auditor rebuilds the same state and gets the same
numbers."""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import matplotlib

matplotlib.use("svg")  # no display: charts are written as SVG text into the page

import matplotlib.pyplot as plt
from jinja2 import Environment, PackageLoader, select_autoescape

from services.audit.asof import Figure, Moment, State, ask, rebuild
from shared.settings import KafkaSettings

# Premiums are due by the 15th of the month they cover (brief: "due by the 15th").
DUE_DAY = 15

# Claims belong to the fiscal year whose coverage their incident falls in: from the year's first
# coverage start to its last coverage end.
FISCAL_WINDOW = (
    "WITH window_ AS (SELECT min(start_date) AS first_day, "
    "max(coalesce(ended_on, end_date)) AS last_day FROM {billing_coverages}.coverages "
    "WHERE fiscal_year = {year}) "
)
REPORT_QUERIES = {
    "covered workers per month by cohort": (
        "SELECT to_char(m, 'YYYY-MM') AS month, c.cohort, count(DISTINCT c.worker_id) AS workers "
        "FROM generate_series(make_date({year}, 1, 1), make_date({year}, 12, 1), "
        "interval '1 month') AS m "
        "JOIN {billing_coverages}.coverages c ON c.start_date <= "
        "(m + interval '1 month - 1 day')::date AND coalesce(c.ended_on, c.end_date) >= m::date "
        "GROUP BY 1, 2 ORDER BY 1, 2"
    ),
    "premiums against the budget": (
        "SELECT p.cohort, coalesce((SELECT sum(allocated) FROM {billing_allocations}.allocations a "
        "WHERE a.fiscal_year = {year} AND a.cohort = p.cohort), 0) AS budget, "
        "sum(p.amount) AS invoiced, "
        "coalesce(sum(p.amount) FILTER (WHERE p.paid_on <= make_date(left(p.period, 4)::int, "
        "right(p.period, 2)::int, {due_day})), 0) AS paid_on_time, "
        "coalesce(sum(p.amount) FILTER (WHERE p.paid_on > make_date(left(p.period, 4)::int, "
        "right(p.period, 2)::int, {due_day})), 0) AS paid_late, "
        "coalesce(sum(p.amount) FILTER (WHERE p.paid_on IS NULL), 0) AS unpaid "
        "FROM {billing_premiums}.premiums p WHERE p.fiscal_year = {year} "
        "GROUP BY p.cohort ORDER BY p.cohort"
    ),
    "claims filed, decided and paid": (
        FISCAL_WINDOW + "SELECT benefit, kind, count(*) AS filed, "
        "count(*) FILTER (WHERE status IN ('approved', 'paid')) AS approved, "
        "count(*) FILTER (WHERE status = 'rejected') AS rejected, "
        "count(*) FILTER (WHERE status = 'pending') AS pending, "
        "count(*) FILTER (WHERE status = 'paid') AS paid, "
        "coalesce(sum(total) FILTER (WHERE status IN ('approved', 'paid')), 0) AS approved_amount, "
        "coalesce(sum(total) FILTER (WHERE status = 'paid'), 0) AS paid_amount "
        "FROM {claims_claims}.claims, window_ w "
        "WHERE incident_date BETWEEN w.first_day AND w.last_day GROUP BY 1, 2 ORDER BY 1, 2"
    ),
    "loss ratio": (
        FISCAL_WINDOW + "SELECT coalesce((SELECT sum(total) FROM {claims_claims}.claims, window_ w "
        "WHERE status = 'paid' AND incident_date BETWEEN w.first_day AND w.last_day), 0) "
        "AS claims_paid, "
        "coalesce((SELECT sum(amount) FROM {billing_premiums}.premiums WHERE paid_on IS NOT NULL "
        "AND fiscal_year = {year}), 0) AS premiums_paid"
    ),
}


@dataclass(frozen=True)
class Report:
    fiscal_year: int
    state: State
    figures: dict[str, Figure]
    charts: dict[str, str]
    loss_ratio: float | None
    html: str


async def report_figures(
    pool: asyncpg.Pool,
    kafka: KafkaSettings,
    fiscal_year: int,
    label: str,
    known_at: datetime,
    progress: Callable[[int], None] = lambda _: None,
) -> tuple[State, dict[str, Figure], float | None]:
    """The fiscal year's figures as known at ``known_at``, rebuilt under ``label``; and the
    loss ratio (None while no premium is paid)."""
    state = await rebuild(pool, kafka, label, Moment(known_at=known_at), progress)
    figures = {}
    for title, query in REPORT_QUERIES.items():
        sql = query.format(year=fiscal_year, due_day=DUE_DAY, **state.schemas)
        figures[title] = await ask(pool, title, sql)
    claims_paid, premiums_paid = figures["loss ratio"].rows[0]
    return state, figures, claims_paid / premiums_paid if premiums_paid else None


async def build_report(
    pool: asyncpg.Pool,
    kafka: KafkaSettings,
    fiscal_year: int,
    known_at: datetime | None = None,
    progress: Callable[[int], None] = lambda _: None,
) -> Report:
    """The fiscal year as known at ``known_at`` (default: now, which the report then names)."""
    moment = known_at or datetime.now(UTC)
    state, figures, ratio = await report_figures(
        pool, kafka, fiscal_year, f"report_{fiscal_year}", moment, progress
    )
    charts = {
        "covered workers per month by cohort": _coverage_chart(
            figures["covered workers per month by cohort"]
        ),
        "premiums against the budget": _bars(
            figures["premiums against the budget"], "rupiah", skip=1
        ),
        "claims filed, decided and paid": _bars(
            figures["claims filed, decided and paid"], "claims", skip=2, only=(2, 3, 4, 5, 6)
        ),
    }
    html = render(fiscal_year, state, figures, charts, ratio)
    return Report(fiscal_year, state, figures, charts, ratio, html)


def render(
    fiscal_year: int,
    state: State,
    figures: dict[str, Figure],
    charts: dict[str, str],
    loss_ratio: float | None,
) -> str:
    template = templates().get_template("report.html.j2")
    return template.render(
        fiscal_year=fiscal_year,
        state=state,
        figures=figures,
        charts=charts,
        loss_ratio=loss_ratio,
        rupiah=rupiah,
    )


def templates() -> Environment:
    return Environment(
        loader=PackageLoader("services.audit", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
    )


def rupiah(value: Any) -> str:
    return f"Rp{value:,.0f}".replace(",", ".") if isinstance(value, int | float) else str(value)


def _svg(figure: Any) -> str:
    out = io.StringIO()
    figure.savefig(out, format="svg", bbox_inches="tight")
    plt.close(figure)
    text = out.getvalue()
    return text[text.index("<svg") :]


def _coverage_chart(figure: Figure) -> str:
    series: dict[str, dict[str, int]] = defaultdict(dict)
    for month, cohort, workers in figure.rows:
        series[cohort][month] = workers
    months = sorted({m for s in series.values() for m in s})
    chart, axes = plt.subplots(figsize=(8, 3))
    for cohort, points in sorted(series.items()):
        axes.plot(months, [points.get(m, 0) for m in months], marker="o", label=cohort)
    axes.set_ylabel("covered workers")
    axes.legend()
    axes.tick_params(axis="x", labelrotation=45)
    return _svg(chart)


def _bars(figure: Figure, unit: str, skip: int, only: tuple[int, ...] | None = None) -> str:
    """One group of bars per row (labelled by its first ``skip`` columns), a bar per column."""
    columns = list(only) if only else list(range(skip, len(figure.columns)))
    chart, axes = plt.subplots(figsize=(8, 3))
    width = 0.8 / max(1, len(columns))
    for i, column in enumerate(columns):
        axes.bar(
            [n + i * width for n in range(len(figure.rows))],
            [row[column] for row in figure.rows],
            width,
            label=figure.columns[column],
        )
    axes.set_xticks(
        [n + width * (len(columns) - 1) / 2 for n in range(len(figure.rows))],
        [" ".join(str(v) for v in row[:skip]) for row in figure.rows],
    )
    axes.set_ylabel(unit)
    axes.legend(fontsize="small")
    return _svg(chart)
