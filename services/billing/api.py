"""Billing's HTTP API (budget so far).

No postponed annotations here: FastAPI reads the routes' annotations, which refer to the
authentication dependency built inside ``create_app``.
"""

import uuid
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Query
from pydantic import BaseModel, ConfigDict, Field

from services.billing.budget import AllocateBudget
from services.billing.service import BillingService
from shared.auth import AuthSettings, Principal, require_role
from shared.events.bounds import PersonName, Reference
from shared.eventstore.store import CommandContext
from shared.http import MAX_RUPIAH, FiscalYear, service_app
from shared.logs import correlation_id


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


def create_app(service: BillingService, auth: AuthSettings) -> FastAPI:
    app, router, caller = service_app(
        "billing",
        "The city's budget for the programme, premiums invoiced and paid.",
        auth,
    )

    def context(principal: Principal) -> CommandContext:
        return CommandContext(principal.subject, principal.role, correlation_id())

    @router.post("/budgets", status_code=201)
    async def allocate(
        body: AllocationRequest, principal: Annotated[Principal, Depends(caller)]
    ) -> dict[str, Any]:
        """Allocate budget to a cohort for a fiscal year (city administrator)."""
        require_role(principal, ["city_admin"])
        command = AllocateBudget(
            body.fiscal_year, body.source, body.cohort, body.amount, service.clock()
        )
        result = await service.allocate(command, context(principal))
        return {"stream_id": result.stream_id, "stream_version": result.last_version}

    @router.post("/billing-runs", status_code=201)
    async def billing_run(
        body: BillingRunRequest, principal: Annotated[Principal, Depends(caller)]
    ) -> dict[str, Any]:
        """Invoice a month: every covered worker not invoiced for it yet (a later run of the
        same month is supplementary)."""
        require_role(principal, ["billing_officer"])
        issued = await service.run_billing(body.period, context(principal))
        return issued.model_dump(mode="json")

    @router.get("/invoices")
    async def invoices(
        principal: Annotated[Principal, Depends(caller)],
        period: Annotated[str | None, Query(pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$")] = None,
    ) -> list[dict[str, Any]]:
        """Invoices, newest first, optionally of one month."""
        require_role(principal, ["billing_officer", "city_admin", "auditor"])
        rows = await service.pool.fetch(
            f"SELECT * FROM {service.schema}.invoices WHERE ($1::text IS NULL OR period = $1) "
            "ORDER BY issued_at DESC",
            period,
        )
        return [dict(r) for r in rows]

    @router.post("/invoices/{invoice_id}/payments", status_code=201)
    async def pay(
        invoice_id: uuid.UUID,
        body: PaymentRequest,
        principal: Annotated[Principal, Depends(caller)],
    ) -> dict[str, Any]:
        """Record the city's payment of an invoice (exact total, unused reference)."""
        require_role(principal, ["billing_officer"])
        months = await service.pay(
            invoice_id, body.payment_ref, body.paid_on, body.amount, body.payer, context(principal)
        )
        return {"invoice_id": invoice_id, "worker_months_paid": months}

    @router.get("/workers/{worker_id}/standing")
    async def standing(
        worker_id: uuid.UUID, on: date, principal: Annotated[Principal, Depends(caller)]
    ) -> dict[str, Any]:
        """ACTIVE, GRACE, INACTIVE or NOT_COVERED on a date, with the months in arrears (the
        city's roles: billing knows no worker's area)."""
        require_role(principal, ["billing_officer", "city_admin", "claims_officer", "auditor"])
        result = await service.standing(worker_id, on)
        return {
            "worker_id": worker_id,
            "on": on,
            "status": result.status,
            "arrears": list(result.arrears),
            "last_paid": result.last_paid,
        }

    @router.get("/budgets/{fiscal_year}")
    async def report(
        fiscal_year: FiscalYear, principal: Annotated[Principal, Depends(caller)]
    ) -> dict[str, Any]:
        """Allocated, committed and remaining per cohort; over-commitment flagged."""
        require_role(principal, ["city_admin", "billing_officer", "auditor"])
        return {"fiscal_year": fiscal_year, "cohorts": await service.budget_report(fiscal_year)}

    app.include_router(router)
    return app
