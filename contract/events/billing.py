"""Events owned by the billing service (topic ``<prefix>billing.events``)."""

from __future__ import annotations

from datetime import date
from typing import Literal, get_args
from uuid import UUID

from pydantic import Field

from contract.events.types import Cohort, Contract, FiscalYear, Period, Premium, Rupiah
from shared.bounds import PersonName, Reference


class BudgetAllocated(Contract):
    fiscal_year: FiscalYear
    source: Literal["APBD", "APBD-P"]
    amount: Rupiah
    cohort: Cohort


class PremiumInvoiced(Contract):
    """One worker-month of premium on an invoice to the city."""

    worker_id: UUID
    invoice_id: UUID
    period: Period
    coverage_id: UUID
    cohort: Cohort
    fiscal_year: FiscalYear
    amount: Premium


class CohortTotal(Contract):
    cohort: Cohort
    workers: int = Field(ge=0)
    total: Rupiah
    jkk: Rupiah
    jkm: Rupiah


class InvoiceIssued(Contract):
    """The city's invoice for a month: one line per covered worker (see PremiumInvoiced)."""

    invoice_id: UUID
    period: Period
    supplementary: bool
    lines: int = Field(ge=1)
    totals: list[CohortTotal] = Field(min_length=1, max_length=len(get_args(Cohort)))
    total: Rupiah


class NothingInvoiced(Contract):
    """A month's first billing run found nobody to invoice. The month counts as run all the
    same (as after an InvoiceIssued for it): coverage of it read later is invoiced at once,
    on a supplementary invoice, rather than waiting for a run that may never come."""

    period: Period


class PremiumPaid(Contract):
    """The city paid one worker-month of premium, as part of paying an invoice."""

    worker_id: UUID
    period: Period
    amount: Premium
    invoice_id: UUID
    payment_ref: Reference = Field(description="e.g. the SP2D number")
    paid_on: date
    payer: PersonName
    cohort: Cohort | None = None
    fiscal_year: FiscalYear | None = None


class PremiumCancelled(Contract):
    """A worker-month invoiced for a month its coverage no longer includes (the coverage ended
    earlier: a death, a withdrawal): taken off its unpaid invoice, or owed back to the city
    when the invoice was already paid."""

    worker_id: UUID
    invoice_id: UUID
    period: Period
    coverage_id: UUID
    cohort: Cohort
    fiscal_year: FiscalYear
    amount: Premium
    reason: Literal["expired", "deceased", "age_limit", "withdrawn"]
    refund_due: bool = Field(description="The invoice was paid: the city is owed this back.")
