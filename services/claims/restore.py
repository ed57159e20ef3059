"""Claims' write side after a restore of its store: every claim with what deciding it needs."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import orjson

from services.claims.benefits import Child
from services.claims.domain import Claim
from services.claims.service import ClaimsService, claim_to_json
from shared.db import DbConnection
from shared.events.claims import ChildrenPersonal, ClaimFiled
from shared.events.personal import open_sealed

STATUS = {"ClaimApproved": "approved", "ClaimRejected": "rejected", "ClaimPaid": "paid"}


async def rebuild_write_model(service: ClaimsService, conn: DbConnection) -> int:
    """One row per ClaimFiled, moved on by its decision and payment. The children's birth
    dates and school levels come from their sealed details (none once the worker is erased).
    Returns the number of claims."""
    claims: dict[uuid.UUID, list[Any]] = {}
    for row in await conn.fetch(
        f"SELECT event_type, body FROM {service.schema}.events "
        "WHERE stream_id LIKE 'claim-%' ORDER BY stream_id, stream_version"
    ):
        envelope = orjson.loads(row["body"])
        data = envelope["data"]
        claim_id = uuid.UUID(data["claim_id"])
        if row["event_type"] == "ClaimFiled":
            filed = ClaimFiled.model_validate(data)
            claim = await _claim(service, filed, datetime.fromisoformat(envelope["occurred_at"]))
            claims[claim_id] = [
                claim_id,
                filed.worker_id,
                claim_to_json(claim),
                "pending",
                None,
                None,
                filed.benefit,
            ]
        elif row["event_type"] in STATUS:
            claims[claim_id][3] = STATUS[row["event_type"]]
            if row["event_type"] == "ClaimApproved":
                claims[claim_id][4] = data["total"]
                death = data.get("death_date")
                claims[claim_id][5] = datetime.fromisoformat(death).date() if death else None
    await conn.executemany(
        f"INSERT INTO {service.schema}.worker_claims VALUES ($1, $2, $3, $4, $5, $6, $7)",
        list(claims.values()),
    )
    return len(claims)


async def _claim(service: ClaimsService, filed: ClaimFiled, filed_at: datetime) -> Claim:
    children: tuple[Child, ...] = ()
    if filed.children is not None:
        key = await service.keys.get(filed.children.key_id)
        opened = open_sealed(filed.children, key, ChildrenPersonal)
        if isinstance(opened, ChildrenPersonal):
            children = tuple(
                Child(f"child-{n}", c.birth_date, c.school_level)
                for n, c in enumerate(opened.children, start=1)
            )
    return Claim(
        claim_id=filed.claim_id,
        worker_id=filed.worker_id,
        benefit=filed.benefit,
        kind=filed.kind,
        incident_date=filed.incident_date,
        filed_on=filed_at.date(),
        accident_benefit=filed.accident_benefit,
        months_incapacitated=filed.months_incapacitated,
        medical_costs=filed.medical_costs,
        children=children,
    )
