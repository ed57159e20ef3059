"""Billing's reads: invoices and their lines, a worker's standing on a date, the workers in
arrears, the budget report."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from pydantic import BaseModel, Field

from contract.policy.membership import Status, period_of, standing_on
from services.billing.service import BillingService
from shared.projection.freshness import wait_until_caught_up


class InvoiceView(BaseModel):
    invoice_id: uuid.UUID
    period: str
    supplementary: bool
    total: int
    lines: int
    issued_at: datetime
    paid_on: date | None
    payment_ref: str | None


class StandingView(BaseModel):
    worker_id: uuid.UUID
    on: date
    status: Status
    arrears: list[str]
    last_paid: str | None


class InvoiceLine(BaseModel):
    worker_id: uuid.UUID
    period: str
    cohort: str
    amount: int
    paid_on: date | None
    cancelled: bool  # the coverage ended before the month: not owed
    refund_due: bool  # cancelled after it was paid: the city is owed it back


class InvoiceLines(BaseModel):
    invoice: InvoiceView
    lines: list[InvoiceLine]
    offset: int


class ArrearsView(BaseModel):
    standing: StandingView
    unpaid_months: int = Field(description="Months invoiced up to the day and not paid.")
    owed: int = Field(description="Their premiums, in rupiah.")


class ArrearsList(BaseModel):
    on: date
    workers: list[ArrearsView]
    total: int = Field(description="Workers in arrears in all (the page is a slice of them).")
    offset: int


class PremiumView(BaseModel):
    period: str
    amount: int
    fiscal_year: int
    paid_on: date | None
    cancelled: bool  # a month the coverage no longer includes (it ended earlier)
    refund_due: bool  # cancelled after it was paid: the city is owed it back


class CohortBudget(BaseModel):
    cohort: str
    allocated: int
    committed: int
    invoiced: int
    paid: int
    remaining: int
    over_committed: bool


class BudgetReport(BaseModel):
    fiscal_year: int
    cohorts: list[CohortBudget]


def _invoices_sql(schema: str, where: str) -> str:
    # The total still owed: less the lines cancelled before it was paid.
    return (
        "SELECT invoice_id, period, supplementary, i.total - coalesce(c.cancelled, 0) AS total, "
        f"lines, issued_at, paid_on, payment_ref FROM {schema}.invoices i "
        f"LEFT JOIN {schema}.invoice_cancellations c USING (invoice_id) WHERE {where} "
        "ORDER BY issued_at DESC"
    )


async def invoices(service: BillingService, period: str | None) -> list[InvoiceView]:
    rows = await service.pool.fetch(
        _invoices_sql(service.schema, "($1::text IS NULL OR period = $1)"), period
    )
    return [InvoiceView.model_validate(dict(r)) for r in rows]


async def invoice_lines(
    service: BillingService, invoice_id: uuid.UUID, offset: int, limit: int
) -> InvoiceLines | None:
    """An invoice with a page of its lines (worker-months, by worker); None: no such invoice."""
    found = await service.pool.fetchrow(
        _invoices_sql(service.schema, "invoice_id = $1"), invoice_id
    )
    if found is None:
        return None
    # The lines as the invoice was issued (the write side: no projection to wait for); a line
    # cancelled once the invoice was paid is owed back.
    rows = await service.pool.fetch(
        f"SELECT l.worker_id, l.period, l.cohort, l.total AS amount, i.paid_on, l.cancelled, "
        "l.cancelled AND i.paid_on IS NOT NULL AS refund_due "
        f"FROM {service.schema}.invoice_lines l JOIN {service.schema}.invoices i USING "
        "(invoice_id) WHERE invoice_id = $1 ORDER BY l.worker_id, l.period OFFSET $2 LIMIT $3",
        invoice_id,
        offset,
        limit,
    )
    return InvoiceLines(
        invoice=InvoiceView.model_validate(dict(found)),
        lines=[InvoiceLine.model_validate(dict(r)) for r in rows],
        offset=offset,
    )


async def arrears(service: BillingService, on: date, offset: int, limit: int) -> ArrearsList:
    """The workers with months invoiced up to ``on`` and not paid (nor cancelled), by worker,
    each with their standing on that day; a page of ``limit`` from ``offset``."""
    unpaid = (
        f"FROM {service.schema}.invoice_lines l JOIN {service.schema}.invoices i "
        "USING (invoice_id) WHERE i.paid_on IS NULL AND NOT l.cancelled AND l.period <= $1"
    )
    rows = await service.pool.fetch(
        f"SELECT l.worker_id, count(*) AS unpaid_months, sum(l.total)::bigint AS owed, "
        f"count(*) OVER () AS total {unpaid} GROUP BY l.worker_id ORDER BY l.worker_id "
        "OFFSET $2 LIMIT $3",
        period_of(on),
        offset,
        limit,
    )
    if rows or offset == 0:
        total = rows[0]["total"] if rows else 0
    else:  # a page past the last: how many there are, still
        total = await service.pool.fetchval(
            f"SELECT count(DISTINCT l.worker_id) {unpaid}", period_of(on)
        )
    listed = [
        ArrearsView(
            standing=await standing(service, r["worker_id"], on),
            unpaid_months=r["unpaid_months"],
            owed=r["owed"],
        )
        for r in rows
    ]
    return ArrearsList(on=on, workers=listed, total=total, offset=offset)


async def premiums(service: BillingService, worker_id: uuid.UUID) -> list[PremiumView]:
    rows = await service.pool.fetch(
        f"SELECT period, amount, fiscal_year, paid_on, cancelled, refund_due "
        f"FROM {service.schema}.premiums WHERE worker_id = $1 ORDER BY period",
        worker_id,
    )
    return [PremiumView.model_validate(dict(r)) for r in rows]


async def standing(service: BillingService, worker_id: uuid.UUID, on: date) -> StandingView:
    covered = await service.pool.fetch(
        f"SELECT start_date, coalesce(ended_on, end_date) AS last FROM {service.schema}.coverages "
        "WHERE worker_id = $1",
        worker_id,
    )
    paid = await service.pool.fetch(
        f"SELECT period FROM {service.schema}.premiums "
        "WHERE worker_id = $1 AND paid_on IS NOT NULL",
        worker_id,
    )
    grace = service.book.in_force(on).grace_months
    result = standing_on(
        on, [(r["start_date"], r["last"]) for r in covered], [r["period"] for r in paid], grace
    )
    return StandingView(
        worker_id=worker_id,
        on=on,
        status=result.status,
        arrears=list(result.arrears),
        last_paid=result.last_paid,
    )


async def budget_report(service: BillingService, fiscal_year: int) -> BudgetReport:
    """Per cohort: allocated, committed (covered worker-months x premium), invoiced, paid,
    and what remains of the allocation after the commitments."""
    # A report reflects every event already on the topics, not a lagging projection.
    for projection, source in (
        ("allocations", "billing"),
        ("premiums", "billing"),
        ("coverages", "enrolment"),
    ):
        await wait_until_caught_up(
            service.pool,
            service.schema,
            projection,
            service.kafka,
            [source],
            watcher=service.offsets,
            producers=service.producers,
        )
    rows = await service.pool.fetch(
        f"""
        WITH allocated AS (
            SELECT cohort, sum(allocated) AS allocated FROM {service.schema}.allocations
            WHERE fiscal_year = $1 GROUP BY cohort
        ), committed AS (
            SELECT cohort, sum(monthly_premium * greatest(0,
                (extract(year FROM coalesce(ended_on, end_date)) * 12
                 + extract(month FROM coalesce(ended_on, end_date)))
                - (extract(year FROM start_date) * 12 + extract(month FROM start_date)) + 1
            ))::bigint AS committed
            FROM {service.schema}.coverages WHERE fiscal_year = $1 GROUP BY cohort
        )
        , premiums AS (
            SELECT cohort, (sum(amount) FILTER (WHERE NOT cancelled))::bigint AS invoiced,
                   (sum(amount) FILTER (WHERE paid_on IS NOT NULL))::bigint AS paid
            FROM {service.schema}.premiums WHERE fiscal_year = $1 GROUP BY cohort
        )
        SELECT cohort, coalesce(a.allocated, 0)::bigint AS allocated,
               coalesce(c.committed, 0)::bigint AS committed,
               coalesce(p.invoiced, 0)::bigint AS invoiced,
               coalesce(p.paid, 0)::bigint AS paid
        FROM allocated a FULL JOIN committed c USING (cohort)
        FULL JOIN premiums p USING (cohort) ORDER BY cohort
        """,
        fiscal_year,
    )
    cohorts = [
        CohortBudget(
            cohort=r["cohort"],
            allocated=r["allocated"],
            committed=r["committed"],
            invoiced=r["invoiced"],
            paid=r["paid"],
            remaining=r["allocated"] - r["committed"],
            over_committed=r["committed"] > r["allocated"],
        )
        for r in rows
    ]
    return BudgetReport(fiscal_year=fiscal_year, cohorts=cohorts)
