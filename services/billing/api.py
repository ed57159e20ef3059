"""Billing's HTTP API (budget so far).

No postponed annotations here: FastAPI reads the routes' annotations, which refer to the
authentication dependency built inside ``create_app``.
"""

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from services.billing.budget import AllocateBudget
from services.billing.errors import RefusedError
from services.billing.service import BillingService
from shared.auth import AuthSettings, Principal, authenticated, require_role
from shared.eventstore.store import CommandContext
from shared.http import install_error_handlers, refusal


class AllocationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fiscal_year: int = Field(ge=2022, le=2100)
    source: Literal["APBD", "APBD-P"]
    cohort: Literal["regular", "incidental"]
    amount: int = Field(gt=0, description="Whole rupiah.")


def create_app(service: BillingService, auth: AuthSettings) -> FastAPI:
    app = FastAPI(
        title="Berlian billing",
        version="1",
        description="The city's budget for the programme, premiums invoiced and paid.",
    )
    install_error_handlers(app)
    caller = authenticated(auth)
    router = APIRouter(responses={401: {"description": "no or invalid token"}})

    @app.exception_handler(RefusedError)
    async def refused(_: Request, error: RefusedError) -> JSONResponse:
        return refusal(
            409 if error.conflict else 422,
            str(error),
            problems=[{"field": p.field, "message": p.message} for p in error.problems],
        )

    @router.post("/budgets", status_code=201)
    async def allocate(
        body: AllocationRequest, principal: Annotated[Principal, Depends(caller)]
    ) -> dict[str, Any]:
        """Allocate budget to a cohort for a fiscal year (city administrator)."""
        require_role(principal, ["city_admin"])
        command = AllocateBudget(
            body.fiscal_year, body.source, body.cohort, body.amount, service.clock()
        )
        result = await service.allocate(
            command, CommandContext(principal.subject, principal.role, uuid.uuid4())
        )
        return {"stream_id": result.stream_id, "stream_version": result.last_version}

    @router.get("/budgets/{fiscal_year}")
    async def report(
        fiscal_year: int, principal: Annotated[Principal, Depends(caller)]
    ) -> dict[str, Any]:
        """Allocated, committed and remaining per cohort; over-commitment flagged."""
        require_role(principal, ["city_admin", "billing_officer", "auditor"])
        return {"fiscal_year": fiscal_year, "cohorts": await service.budget_report(fiscal_year)}

    app.include_router(router)
    return app
