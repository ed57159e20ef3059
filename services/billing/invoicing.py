"""The monthly billing run and the city's payments: pure decisions over plain inputs.

A run invoices every coverage that includes any day of the month and is not invoiced for that
month yet, so running a period twice invoices nothing twice and a later run (supplementary)
picks up coverage that started after the first. A month's first run that finds nobody to
invoice records that the month was run (NothingInvoiced), as an invoice would, so coverage of
it read later is invoiced whatever the order. A payment must name an unpaid invoice and pay
exactly its total.
"""

from __future__ import annotations

import calendar
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal
from uuid import UUID

from contract.events.billing import (
    CohortTotal,
    InvoiceIssued,
    NothingInvoiced,
    PremiumCancelled,
    PremiumInvoiced,
    PremiumPaid,
)
from contract.events.types import Premium
from shared.decisions import Decided, Problem, Recorded, RefusedError


@dataclass(frozen=True)
class CoverageLine:
    worker_id: UUID
    coverage_id: UUID
    cohort: str
    fiscal_year: int
    premium: Premium


def month_bounds(period: str) -> tuple[date, date]:
    year, month = (int(part) for part in period.split("-"))
    return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])


def nothing_left(period: str) -> RefusedError:
    return RefusedError([Problem("period", f"no coverage in {period} is left to invoice")])


def decide_invoice(
    invoice_id: UUID, period: str, lines: list[CoverageLine], supplementary: bool
) -> tuple[list[PremiumInvoiced], InvoiceIssued]:
    if not lines:
        raise nothing_left(period)
    invoiced = [
        PremiumInvoiced(
            worker_id=line.worker_id,
            invoice_id=invoice_id,
            period=period,
            coverage_id=line.coverage_id,
            cohort="regular" if line.cohort == "regular" else "incidental",
            fiscal_year=line.fiscal_year,
            amount=line.premium,
        )
        for line in lines
    ]
    sums: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for line in lines:
        total = sums[line.cohort]
        total[0] += 1
        total[1] += line.premium.total
        total[2] += line.premium.jkk
        total[3] += line.premium.jkm
    totals = [
        CohortTotal(
            cohort="regular" if cohort == "regular" else "incidental",
            workers=n,
            total=amount,
            jkk=jkk,
            jkm=jkm,
        )
        for cohort, (n, amount, jkk, jkm) in sorted(sums.items())
    ]
    issued = InvoiceIssued(
        invoice_id=invoice_id,
        period=period,
        supplementary=supplementary,
        lines=len(lines),
        totals=totals,
        total=sum(t.total for t in totals),
    )
    return invoiced, issued


def check_payment(
    invoice_total: int | None, already_paid: bool, reference_used: bool, amount: int
) -> None:
    """Refuse, with a clear reason, anything but the exact payment of an unpaid invoice."""
    if invoice_total is None:
        raise RefusedError([Problem("invoice_id", "no such invoice")], conflict=True)
    problems = []
    if already_paid:
        problems.append(Problem("invoice_id", "this invoice is already paid"))
    if reference_used:
        problems.append(Problem("payment_ref", "this payment reference was used before"))
    if problems:
        raise RefusedError(problems, conflict=True)
    if amount != invoice_total:
        raise RefusedError(
            [Problem("amount", f"Rp{amount:,} differs from the invoice total Rp{invoice_total:,}")]
        )


@dataclass(frozen=True)
class InvoiceLine:
    """A worker-month on an invoice, as a payment settles it."""

    worker_id: UUID
    period: str
    cohort: Literal["regular", "incidental"]
    fiscal_year: int
    premium: Premium


@dataclass(frozen=True)
class RunBilling:
    """A month's run: the coverage lines not yet invoiced, read under the period's lock;
    ``supplementary`` when the month was run before (an invoice or NothingInvoiced for it)."""

    invoice_id: UUID
    period: str
    lines: tuple[CoverageLine, ...]
    supplementary: bool
    at: datetime
    policy_version: str


@dataclass(frozen=True)
class PayInvoice:
    """The city's payment, with what the invoices table says of the invoice and reference."""

    invoice_id: UUID
    payment_ref: str
    paid_on: date
    amount: int
    payer: str
    at: datetime
    lines: tuple[InvoiceLine, ...]
    already_paid: bool
    reference_used: bool


@dataclass(frozen=True)
class CancelLines:
    """The invoice's lines for months a coverage no longer includes, since it ended on
    ``ended_on`` (a death, a withdrawal recorded after the month was invoiced)."""

    invoice_id: UUID
    lines: tuple[CoverageLine, ...]
    periods: tuple[str, ...]  # the period of each line
    reason: Literal["expired", "deceased", "age_limit", "withdrawn"]
    paid: bool
    at: datetime


InvoiceCommand = RunBilling | PayInvoice | CancelLines


@dataclass(frozen=True)
class Invoice:
    """An invoice as its stream tells it: its total once issued, less the lines cancelled
    before it was paid."""

    total: int | None = None
    cancelled: frozenset[tuple[UUID, str]] = frozenset()  # (worker, period)


def premiums_stream(worker_id: UUID) -> str:
    return f"premiums-{worker_id}"


@dataclass(frozen=True)
class InvoiceRules:
    """The invoice aggregate as a Decider: issued by a run, settled by one payment; each
    worker-month is also recorded on the worker's premiums stream."""

    initial: Invoice = Invoice()

    def decide(self, command: InvoiceCommand, invoice: Invoice) -> list[Decided]:
        if isinstance(command, RunBilling):
            if invoice.total is not None:
                raise RefusedError([Problem("invoice_id", "this invoice was issued already")], True)
            if not command.lines and not command.supplementary:
                # Recorded on the run's stream: the month is run, though nothing is owed for it.
                return [
                    Decided(
                        "NothingInvoiced",
                        NothingInvoiced(period=command.period),
                        command.at,
                        command.policy_version,
                    )
                ]
            invoiced, issued = decide_invoice(
                command.invoice_id, command.period, list(command.lines), command.supplementary
            )
            return [
                Decided("InvoiceIssued", issued, command.at, command.policy_version),
                *(
                    Decided(
                        "PremiumInvoiced",
                        line,
                        command.at,
                        command.policy_version,
                        worker_id=line.worker_id,
                        stream_id=premiums_stream(line.worker_id),
                    )
                    for line in invoiced
                ),
            ]
        if isinstance(command, CancelLines):
            return _cancel(command, invoice)
        check_payment(invoice.total, command.already_paid, command.reference_used, command.amount)
        return [
            Decided(
                "PremiumPaid",
                PremiumPaid(
                    worker_id=line.worker_id,
                    period=line.period,
                    amount=line.premium,
                    invoice_id=command.invoice_id,
                    payment_ref=command.payment_ref,
                    paid_on=command.paid_on,
                    payer=command.payer,
                    cohort=line.cohort,
                    fiscal_year=line.fiscal_year,
                ),
                command.at,
                None,
                worker_id=line.worker_id,
                stream_id=premiums_stream(line.worker_id),
            )
            for line in command.lines
        ]

    def evolve(self, invoice: Invoice, event: Recorded) -> Invoice:
        data = event.data
        if isinstance(data, InvoiceIssued):
            return Invoice(total=data.total)
        if isinstance(data, PremiumCancelled):
            total = invoice.total
            if total is not None and not data.refund_due:
                total -= data.amount.total
            cancelled = invoice.cancelled | {(data.worker_id, data.period)}
            return Invoice(total=total, cancelled=cancelled)
        return invoice


def _cancel(command: CancelLines, invoice: Invoice) -> list[Decided]:
    """Each line once: a month the coverage no longer includes is never owed. Recorded on the
    invoice's stream and keyed by it (the worker is in the data), so an invoice's events stay in
    one partition, in their order, whichever workers' lines they cancel."""
    if invoice.total is None:
        return []
    return [
        Decided(
            "PremiumCancelled",
            PremiumCancelled(
                worker_id=line.worker_id,
                invoice_id=command.invoice_id,
                period=period,
                coverage_id=line.coverage_id,
                cohort="regular" if line.cohort == "regular" else "incidental",
                fiscal_year=line.fiscal_year,
                amount=line.premium,
                reason=command.reason,
                refund_due=command.paid,
            ),
            command.at,
            None,
        )
        for line, period in zip(command.lines, command.periods, strict=True)
        if (line.worker_id, period) not in invoice.cancelled
    ]
