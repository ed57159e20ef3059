"""Claims' HTTP API: file (decided at once, or waiting on arrears), explain, pay.

No postponed annotations here: FastAPI reads the routes' annotations, which refer to the
authentication dependency built inside ``create_app``.
"""

import uuid
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from services.claims.benefits import Child
from services.claims.domain import Approved, Claim, Pending, Rejected
from services.claims.service import ClaimsService
from shared.auth import AuthSettings, Principal, require_role
from shared.events.bounds import MAX_CHILDREN, MAX_DOCUMENTS, PersonName, Reference
from shared.events.claims import ChildPersonal, ClaimantPersonal
from shared.eventstore.store import CommandContext
from shared.http import MAX_RUPIAH, service_app
from shared.logs import correlation_id


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


def create_app(service: ClaimsService, auth: AuthSettings) -> FastAPI:
    app, router, caller = service_app(
        "claims",
        "JKM and JKK claims and scholarships, decided by the programme's rules.",
        auth,
    )

    @router.post("/claims", status_code=201)
    async def file(
        body: ClaimRequest, principal: Annotated[Principal, Depends(caller)]
    ) -> dict[str, Any]:
        """File a claim; it is decided at once, or waits while the premiums are in arrears."""
        require_role(principal, ["claims_officer"])
        claim = Claim(
            claim_id=uuid.uuid4(),
            worker_id=body.worker_id,
            benefit=body.benefit,
            kind=body.kind,
            incident_date=body.incident_date,
            filed_on=service.clock().date(),
            accident_benefit=body.accident_benefit,
            months_incapacitated=body.months_incapacitated,
            medical_costs=body.medical_costs,
            children=tuple(
                Child(f"child-{n}", c.birth_date, c.school_level)
                for n, c in enumerate(body.children, start=1)
            ),
        )
        children = [ChildPersonal(**c.model_dump()) for c in body.children]
        context = CommandContext(principal.subject, principal.role, correlation_id())
        decision = await service.file(claim, body.claimant, children, body.documents, context)
        result: dict[str, Any] = {"claim_id": claim.claim_id}
        if isinstance(decision, Approved):
            items = [
                {"code": i.code, "amount": i.amount, "description": i.description}
                for i in decision.items
            ]
            return result | {
                "status": "approved",
                "items": items,
                "total": decision.total,
                "explanation": decision.note,
            }
        if isinstance(decision, Rejected):
            return result | {
                "status": "rejected",
                "reasons": list(decision.reasons),
                "explanation": decision.note,
            }
        assert isinstance(decision, Pending)
        return result | {"status": "pending", "explanation": decision.note}

    @router.get("/claims/{claim_id}")
    async def get_claim(
        claim_id: uuid.UUID, principal: Annotated[Principal, Depends(caller)]
    ) -> dict[str, Any]:
        """A claim, its status and the decision in plain words."""
        require_role(principal, ["claims_officer", "city_admin", "auditor"])
        row = await service.pool.fetchrow(
            f"SELECT * FROM {service.schema}.claims WHERE claim_id = $1", claim_id
        )
        if row is None:
            raise HTTPException(404, f"no claim {claim_id}")
        return dict(row)

    @router.get("/claims")
    async def claims(
        principal: Annotated[Principal, Depends(caller)], worker_id: uuid.UUID | None = None
    ) -> list[dict[str, Any]]:
        """Claims, optionally of one worker, newest first."""
        require_role(principal, ["claims_officer", "city_admin", "auditor"])
        rows = await service.pool.fetch(
            f"SELECT * FROM {service.schema}.claims WHERE ($1::uuid IS NULL OR worker_id = $1) "
            "ORDER BY filed_at DESC LIMIT 1000",
            worker_id,
        )
        return [dict(r) for r in rows]

    @router.post("/claims/{claim_id}/payments", status_code=201)
    async def pay(
        claim_id: uuid.UUID, body: PaymentRequest, principal: Annotated[Principal, Depends(caller)]
    ) -> dict[str, Any]:
        """Record the payment of an approved claim (the approved total, exactly)."""
        require_role(principal, ["claims_officer"])
        context = CommandContext(principal.subject, principal.role, correlation_id())
        await service.pay(claim_id, body.payment_ref, body.paid_on, body.amount, context)
        return {"claim_id": claim_id, "status": "paid"}

    app.include_router(router)
    return app
