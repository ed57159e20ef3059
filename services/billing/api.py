"""Billing's HTTP API: budgets, monthly runs, payments, standing and the budget report.

Routes authenticate, validate and hand over: commands to ``services.billing.service``, reads
to ``services.billing.queries``.
"""

import uuid
from datetime import date
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from contract.api import contract_router
from contract.events.billing import InvoiceIssued
from services.billing import queries
from services.billing.budget import AllocateBudget
from services.billing.queries import (
    ArrearsList,
    BudgetReport,
    InvoiceLines,
    InvoiceView,
    PremiumView,
    StandingView,
)
from services.billing.service import BillingService
from shared.auth import AuthSettings, Principal, require_role
from shared.bounds import PersonName, Reference
from shared.http import (
    MAX_RUPIAH,
    FiscalYear,
    Idempotency,
    caller,
    command_context,
    idempotent,
    service_app,
    service_router,
)


class AllocationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fiscal_year: FiscalYear
    source: Literal["APBD", "APBD-P"]
    cohort: Literal["regular", "incidental"]
    amount: int = Field(gt=0, le=MAX_RUPIAH, description="Whole rupiah.")


class BillingRunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    period: str = Field(pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$", examples=["2025-01"])


class PaymentRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    payment_ref: Reference = Field(examples=["SP2D 00123/2025"])
    paid_on: date
    amount: int = Field(
        gt=0, le=MAX_RUPIAH, description="Whole rupiah; must equal the invoice total."
    )
    payer: PersonName = "Pemerintah Kota Pekalongan"


class Allocated(BaseModel):
    stream_id: str
    stream_version: int


class Paid(BaseModel):
    invoice_id: uuid.UUID
    worker_months_paid: int


def billing(request: Request) -> BillingService:
    service: BillingService = request.app.state.service
    return service


Caller = Annotated[Principal, Depends(caller)]
# A listing's page: where it starts, and how many it holds at most.
Offset = Annotated[int, Query(ge=0, le=1_000_000)]
PageSize = Annotated[int, Query(ge=1, le=500)]
Billing = Annotated[BillingService, Depends(billing)]
router = service_router()


@router.post("/budgets", status_code=201)
async def allocate(
    body: AllocationRequest,
    principal: Caller,
    service: Billing,
    key: Annotated[Idempotency | None, Depends(idempotent("allocate", required=True))],
) -> Allocated:
    """Allocate budget to a cohort for a fiscal year (city administrator)."""
    require_role(principal, ["city_admin"])
    command = AllocateBudget(
        body.fiscal_year, body.source, body.cohort, body.amount, service.clock()
    )
    return Allocated.model_validate(
        (await service.allocate(command, command_context(principal, key))).response
    )


@router.post("/billing-runs", status_code=201)
async def billing_run(
    body: BillingRunRequest,
    principal: Caller,
    service: Billing,
    key: Annotated[Idempotency | None, Depends(idempotent("billing-run", required=True))],
) -> InvoiceIssued:
    """Invoice a month: every covered worker not invoiced for it yet (a later run of the
    same month is supplementary). Nobody left to invoice is refused; a month's first run is
    recorded all the same, so coverage of the month read later is invoiced at once."""
    require_role(principal, ["billing_officer"])
    handled = await service.run_billing(body.period, command_context(principal, key))
    return InvoiceIssued.model_validate(handled.response)


@router.get("/invoices")
async def invoices(
    principal: Caller,
    service: Billing,
    period: Annotated[str | None, Query(pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$")] = None,
) -> list[InvoiceView]:
    """Invoices, newest first, optionally of one month."""
    require_role(principal, ["billing_officer", "city_admin", "auditor"])
    return await queries.invoices(service, period)


@router.get("/invoices/{invoice_id}")
async def invoice(
    invoice_id: uuid.UUID,
    principal: Caller,
    service: Billing,
    offset: Offset = 0,
    limit: PageSize = 50,
) -> InvoiceLines:
    """An invoice with a page of its lines: each worker-month, paid or cancelled."""
    require_role(principal, ["billing_officer", "city_admin", "auditor"])
    found = await queries.invoice_lines(service, invoice_id, offset, limit)
    if found is None:
        raise HTTPException(404, f"no invoice {invoice_id}")
    return found


@router.get("/arrears")
async def arrears(
    on: date,
    principal: Caller,
    service: Billing,
    offset: Offset = 0,
    limit: PageSize = 50,
) -> ArrearsList:
    """The workers with months invoiced up to a day and unpaid, each with their standing."""
    require_role(principal, ["billing_officer", "city_admin", "auditor"])
    return await queries.arrears(service, on, offset, limit)


@router.post("/invoices/{invoice_id}/payments", status_code=201)
async def pay(
    invoice_id: uuid.UUID,
    body: PaymentRequest,
    principal: Caller,
    service: Billing,
    key: Annotated[Idempotency | None, Depends(idempotent("pay-invoice", required=True))],
) -> Paid:
    """Record the city's payment of an invoice (exact total, unused reference)."""
    require_role(principal, ["billing_officer"])
    handled = await service.pay(
        invoice_id,
        body.payment_ref,
        body.paid_on,
        body.amount,
        body.payer,
        command_context(principal, key),
    )
    return Paid.model_validate(handled.response)


@router.get("/workers/{worker_id}/standing")
async def standing(
    worker_id: uuid.UUID, on: date, principal: Caller, service: Billing
) -> StandingView:
    """ACTIVE, GRACE, INACTIVE or NOT_COVERED on a date, with the months in arrears (the
    city's roles: billing knows no worker's area)."""
    require_role(principal, ["billing_officer", "city_admin", "claims_officer", "auditor"])
    return await queries.standing(service, worker_id, on)


@router.get("/workers/{worker_id}/premiums")
async def premiums(worker_id: uuid.UUID, principal: Caller, service: Billing) -> list[PremiumView]:
    """Every month invoiced for the worker: paid, or cancelled because the coverage ended
    earlier (a death), and then owed back if it had been paid."""
    require_role(principal, ["city_admin", "billing_officer", "auditor"])
    return await queries.premiums(service, worker_id)


@router.get("/budgets/{fiscal_year}")
async def report(fiscal_year: FiscalYear, principal: Caller, service: Billing) -> BudgetReport:
    """Allocated, committed and remaining per cohort; over-commitment flagged."""
    require_role(principal, ["city_admin", "billing_officer", "auditor"])
    return await queries.budget_report(service, fiscal_year)


def create_app(service: BillingService, auth: AuthSettings) -> FastAPI:
    return service_app(
        "billing",
        "The city's budget for the programme, premiums invoiced and paid.",
        auth,
        router,
        service,
        published=[contract_router()],
    )
