"""Claims' reads: a claim and its decision in plain words, a worker's claims."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from pydantic import BaseModel

from services.claims.service import ClaimsService


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
