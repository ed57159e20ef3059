"""Claims' reads: a claim and its decision in plain words, a worker's claims, a scholarship
award's school years approved and to come."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from pydantic import BaseModel, Field

from contract.events.claims import BenefitItem, ClaimApproved, ScholarshipInstalmentApproved
from contract.events.registry import parse
from services.claims.service import ClaimsService, stream_of


class ClaimView(BaseModel):
    claim_id: uuid.UUID
    worker_id: uuid.UUID
    benefit: str
    kind: str
    incident_date: date
    filed_at: datetime
    status: str
    total: int | None
    reasons: str | None
    note: str | None
    paid_on: date | None
    payment_ref: str | None


async def claim(service: ClaimsService, claim_id: uuid.UUID) -> ClaimView | None:
    row = await service.pool.fetchrow(
        f"SELECT * FROM {service.schema}.claims WHERE claim_id = $1", claim_id
    )
    return None if row is None else ClaimView.model_validate(dict(row))


async def claims(service: ClaimsService, worker_id: uuid.UUID | None) -> list[ClaimView]:
    rows = await service.pool.fetch(
        f"SELECT * FROM {service.schema}.claims WHERE ($1::uuid IS NULL OR worker_id = $1) "
        "ORDER BY filed_at DESC LIMIT 1000",
        worker_id,
    )
    return [ClaimView.model_validate(dict(r)) for r in rows]


class AwardView(BaseModel):
    claim_id: uuid.UUID
    approved: list[BenefitItem] = Field(
        description="What the claim's approvals pay: its items, then each later school year "
        "approved, in order (a scholarship's items name the child and the school year)."
    )
    to_come: list[BenefitItem] = Field(
        description="A scholarship's later school years, approved one by one once begun."
    )


async def award(service: ClaimsService, claim_id: uuid.UUID) -> AwardView | None:
    """The claim's award as its own stream tells it; None: no such claim or not approved."""
    approved: list[BenefitItem] = []
    to_come: list[BenefitItem] = []
    for stored in await service.store.read_stream(stream_of(claim_id)):
        _, data = parse(stored.envelope)
        if isinstance(data, ClaimApproved):
            approved += data.items
            to_come = list(data.open_instalments)
        elif isinstance(data, ScholarshipInstalmentApproved):
            approved.append(data.item)
            paid = (data.item.child, data.item.school_year)
            to_come = [i for i in to_come if (i.child, i.school_year) != paid]
    if not approved:
        return None
    return AwardView(claim_id=claim_id, approved=approved, to_come=to_come)
