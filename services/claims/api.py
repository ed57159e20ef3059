"""Claims' HTTP API: file (decided at once, or waiting on arrears), explain, pay.

Routes authenticate, validate and hand over: commands to ``services.claims.service``, reads
to ``services.claims.queries``.
"""

import uuid
from datetime import date
from typing import Annotated, Literal, TypeVar

from fastapi import Depends, FastAPI, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from contract.api import contract_router
from contract.events.claims import BenefitItem, ChildPersonal, ClaimantPersonal
from services.claims import queries
from services.claims.benefits import Child
from services.claims.domain import Claim
from services.claims.queries import AwardView, ClaimView
from services.claims.service import ClaimsService
from shared.auth import AuthSettings, Principal, require_role
from shared.bounds import MAX_CHILDREN, MAX_DOCUMENTS, PersonName, Reference
from shared.business_calendar import business_day
from shared.http import (
    MAX_RUPIAH,
    Idempotency,
    caller,
    command_context,
    idempotent,
    service_app,
    service_router,
)

Found = TypeVar("Found")


class ChildRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: PersonName
    birth_date: date
    school_level: Literal["TK", "SD", "SMP", "SMA", "university"]


class ClaimRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    worker_id: uuid.UUID
    benefit: Literal["JKM", "JKK"]
    kind: Literal["death", "accident", "scholarship"]
    incident_date: date
    claimant: ClaimantPersonal
    documents: list[Reference] = Field(default_factory=list, max_length=MAX_DOCUMENTS)
    accident_benefit: (
        Literal["medical", "temporary_incapacity", "total_permanent_disability"] | None
    ) = None
    months_incapacitated: int | None = Field(default=None, ge=1, le=120)
    medical_costs: int | None = Field(default=None, ge=0, le=MAX_RUPIAH)
    children: list[ChildRequest] = Field(default_factory=list, max_length=MAX_CHILDREN)


class PaymentRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    payment_ref: Reference
    paid_on: date
    amount: int = Field(gt=0, le=MAX_RUPIAH)


class ClaimDecision(BaseModel):
    """A filed claim's decision: approved with its items and total, rejected with reasons, or
    pending while the premiums are in arrears; always explained."""

    claim_id: uuid.UUID
    status: Literal["approved", "rejected", "pending"]
    explanation: str
    items: list[BenefitItem] | None = None
    total: int | None = None
    open_instalments: list[BenefitItem] | None = None
    reasons: list[str] | None = None


class ClaimPaidView(BaseModel):
    claim_id: uuid.UUID
    status: Literal["paid"]


def claims_service(request: Request) -> ClaimsService:
    service: ClaimsService = request.app.state.service
    return service


Caller = Annotated[Principal, Depends(caller)]
Claims = Annotated[ClaimsService, Depends(claims_service)]
router = service_router()


def found(read: Found | None, missing: str) -> Found:
    """What a read found, or 404 saying what was not there."""
    if read is None:
        raise HTTPException(404, missing)
    return read


@router.post("/claims", status_code=201)
async def file(
    body: ClaimRequest,
    principal: Caller,
    service: Claims,
    key: Annotated[Idempotency | None, Depends(idempotent("file-claim", required=True))],
) -> ClaimDecision:
    """File a claim; it is decided at once, or waits while the premiums are in arrears."""
    require_role(principal, ["claims_officer"])
    claim = Claim(
        claim_id=uuid.uuid4(),
        worker_id=body.worker_id,
        benefit=body.benefit,
        kind=body.kind,
        incident_date=body.incident_date,
        filed_on=business_day(service.clock()),
        accident_benefit=body.accident_benefit,
        months_incapacitated=body.months_incapacitated,
        medical_costs=body.medical_costs,
        children=tuple(
            Child(f"child-{n}", c.birth_date, c.school_level)
            for n, c in enumerate(body.children, start=1)
        ),
    )
    children = [ChildPersonal(**c.model_dump()) for c in body.children]
    handled = await service.file(
        claim, body.claimant, children, body.documents, command_context(principal, key)
    )
    return ClaimDecision.model_validate(handled.response)


@router.get("/claims/{claim_id}")
async def get_claim(claim_id: uuid.UUID, principal: Caller, service: Claims) -> ClaimView:
    """A claim, its status and the decision in plain words."""
    require_role(principal, ["claims_officer", "city_admin", "auditor"])
    return found(await queries.claim(service, claim_id), f"no claim {claim_id}")


@router.get("/claims/{claim_id}/award")
async def get_award(claim_id: uuid.UUID, principal: Caller, service: Claims) -> AwardView:
    """An approved claim's award: what it pays, and a scholarship's school years to come."""
    require_role(principal, ["claims_officer", "city_admin", "auditor"])
    return found(await queries.award(service, claim_id), f"no approved claim {claim_id}")


@router.get("/claims")
async def claims(
    principal: Caller, service: Claims, worker_id: uuid.UUID | None = None
) -> list[ClaimView]:
    """Claims, optionally of one worker, newest first."""
    require_role(principal, ["claims_officer", "city_admin", "auditor"])
    return await queries.claims(service, worker_id)


class InstalmentRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    child: str = Field(pattern=r"^child-[0-9]{1,2}$")
    school_year: str = Field(pattern=r"^[0-9]{4}/[0-9]{4}$")
    married: bool = Field(description="The heir declares the child has married.")
    working: bool = Field(description="The heir declares the child works.")


class InstalmentView(BaseModel):
    claim_id: uuid.UUID
    status: Literal["approved"]
    child: str
    school_year: str


@router.post("/claims/{claim_id}/instalments", status_code=201)
async def approve_instalment(
    claim_id: uuid.UUID,
    body: InstalmentRequest,
    principal: Caller,
    service: Claims,
    key: Annotated[Idempotency | None, Depends(idempotent("claim-instalment", required=True))],
) -> InstalmentView:
    """A later school year of a scholarship award, once it has begun and while the child is
    still eligible; then paid like an approval (``/payments`` with its amount)."""
    require_role(principal, ["claims_officer"])
    handled = await service.approve_instalment(
        claim_id,
        body.child,
        body.school_year,
        body.married,
        body.working,
        command_context(principal, key),
    )
    return InstalmentView.model_validate(handled.response)


@router.post("/claims/{claim_id}/payments", status_code=201)
async def pay(
    claim_id: uuid.UUID,
    body: PaymentRequest,
    principal: Caller,
    service: Claims,
    key: Annotated[Idempotency | None, Depends(idempotent("pay-claim", required=True))],
) -> ClaimPaidView:
    """Record the payment of an approved claim (the approved total, exactly)."""
    require_role(principal, ["claims_officer"])
    handled = await service.pay(
        claim_id, body.payment_ref, body.paid_on, body.amount, command_context(principal, key)
    )
    return ClaimPaidView.model_validate(handled.response)


def create_app(service: ClaimsService, auth: AuthSettings) -> FastAPI:
    return service_app(
        "claims",
        "JKM and JKK claims and scholarships, decided by the programme's rules.",
        auth,
        router,
        service,
        published=[contract_router()],
    )
