"""Claims' write side: the claim registry, every claim with what deciding it again needs (no
personal data) and its outcome, kept from its own events. The duplicate-death rule and the
claims waiting on arrears read it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

import orjson

from services.claims.benefits import Child
from services.claims.domain import Claim
from shared.business_calendar import business_day
from shared.db import DbConnection
from shared.events.claims import (
    ChildrenPersonal,
    ClaimApproved,
    ClaimFiled,
    ClaimPaid,
    ClaimRejected,
    ClaimReopened,
)
from shared.eventstore.inline import Appended
from shared.eventstore.migrations import Migration
from shared.keystore import KeyStore
from shared.projection.changes import RowChange, Update, Upsert
from shared.sealing import open_sealed

WRITE_MODEL = (
    Migration(
        "worker_claims",
        """
        -- Every claim with what deciding it again needs (no personal data), and its outcome.
        CREATE TABLE {schema}.worker_claims (
            claim_id   uuid PRIMARY KEY,
            worker_id  uuid NOT NULL,
            claim      jsonb NOT NULL,
            status     text NOT NULL,     -- pending, approved, rejected, paid
            total      bigint,
            death_date date,
            benefit    text NOT NULL
        );
        CREATE INDEX ON {schema}.worker_claims (worker_id, status);
        """,
    ),
    Migration(
        "worker_claims_rejections",
        """
        -- A rejection on another service's facts is revised when facts that service had
        -- recorded before the rejection arrive later (see services.claims.reactions).
        ALTER TABLE {schema}.worker_claims ADD COLUMN reasons text;
        ALTER TABLE {schema}.worker_claims ADD COLUMN decided_at timestamptz;
        """,
    ),
)


def claim_to_json(claim: Claim) -> str:
    return orjson.dumps(asdict(claim), default=str).decode()


def claim_from_json(raw: str) -> Claim:
    data: dict[str, Any] = orjson.loads(raw)
    children = tuple(
        Child(c["ref"], date.fromisoformat(c["birth_date"]), c["school_level"])
        for c in data.pop("children")
    )
    return Claim(
        **{
            **data,
            "claim_id": uuid.UUID(data["claim_id"]),
            "worker_id": uuid.UUID(data["worker_id"]),
            "incident_date": date.fromisoformat(data["incident_date"]),
            "filed_on": date.fromisoformat(data["filed_on"]),
            "children": children,
        }
    )


def claim_filed(filed: ClaimFiled, filed_on: date, children: tuple[Child, ...]) -> Claim:
    """The claim as the rules decide it, from its filing (children's details opened)."""
    return Claim(
        claim_id=filed.claim_id,
        worker_id=filed.worker_id,
        benefit=filed.benefit,
        kind=filed.kind,
        incident_date=filed.incident_date,
        filed_on=filed_on,
        accident_benefit=filed.accident_benefit,
        months_incapacitated=filed.months_incapacitated,
        medical_costs=filed.medical_costs,
        children=children,
    )


def registry_changes(event: Appended, claim: Claim | None) -> list[RowChange]:
    """The registry's row for a filing (``claim`` as filed), moved on by its decision and
    payment."""
    data = event.data
    if isinstance(data, ClaimFiled):
        assert claim is not None
        row = {
            "worker_id": data.worker_id,
            "claim": claim_to_json(claim),
            "status": "pending",
            "total": None,
            "death_date": None,
            "benefit": data.benefit,
        }
        return [Upsert("worker_claims", {"claim_id": data.claim_id}, row)]
    if isinstance(data, ClaimApproved):
        approved = {"status": "approved", "total": data.total, "death_date": data.death_date}
        return [Update("worker_claims", {"claim_id": data.claim_id}, approved)]
    if isinstance(data, ClaimRejected):
        rejected = {
            "status": "rejected",
            "reasons": ",".join(data.reasons),
            "decided_at": event.envelope.recorded_at,
        }
        return [Update("worker_claims", {"claim_id": data.claim_id}, rejected)]
    if isinstance(data, ClaimReopened):
        return [Update("worker_claims", {"claim_id": data.claim_id}, {"status": "pending"})]
    assert isinstance(data, ClaimPaid)
    return [Update("worker_claims", {"claim_id": data.claim_id}, {"status": "paid"})]


@dataclass(frozen=True)
class ClaimRegistry:
    keys: KeyStore
    event_types: frozenset[str] = frozenset(
        {"ClaimFiled", "ClaimApproved", "ClaimRejected", "ClaimReopened", "ClaimPaid"}
    )

    async def changes(self, conn: DbConnection, events: Sequence[Appended]) -> Sequence[RowChange]:
        return [change for event in events for change in await self._changes(conn, event)]

    async def _changes(self, conn: DbConnection, event: Appended) -> Sequence[RowChange]:
        data = event.data
        if not isinstance(data, ClaimFiled):
            return registry_changes(event, None)
        children: tuple[Child, ...] = ()
        if data.children is not None:
            key = await self.keys.get(data.children.key_id, conn)
            opened = open_sealed(data.children, key, ChildrenPersonal)
            if isinstance(opened, ChildrenPersonal):  # none once the worker is erased
                children = tuple(
                    Child(f"child-{n}", c.birth_date, c.school_level)
                    for n, c in enumerate(opened.children, start=1)
                )
        claim = claim_filed(data, business_day(event.envelope.occurred_at), children)
        return registry_changes(event, claim)

    async def restored(self, conn: DbConnection) -> None:
        return None
