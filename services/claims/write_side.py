"""Claims' write side: the claim registry, each claim's worker and outcome, kept from its own
events. It only tells a reaction which of a worker's claims to decide again (waiting ones, and
rejections on other services' facts decided after a fact): each is then decided on its own
stream, folded by ``ClaimRules.evolve``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from contract.events.claims import (
    ClaimApproved,
    ClaimFiled,
    ClaimPaid,
    ClaimRejected,
    ClaimReopened,
)
from shared.db import DbConnection
from shared.eventstore.inline import Appended
from shared.eventstore.migrations import Migration
from shared.projection.changes import RowChange, Update, Upsert

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
    Migration(
        "worker_claims_lookup",
        """
        -- Claims are decided on their streams: the registry keeps only what finds them.
        ALTER TABLE {schema}.worker_claims DROP COLUMN claim, DROP COLUMN total,
            DROP COLUMN death_date, DROP COLUMN benefit;
        """,
    ),
)


def registry_changes(event: Appended) -> list[RowChange]:
    """The registry's row for a filing, moved on by its decision and payment."""
    data = event.data
    if isinstance(data, ClaimFiled):
        filed = {"worker_id": data.worker_id, "status": "pending"}
        return [Upsert("worker_claims", {"claim_id": data.claim_id}, filed)]
    if isinstance(data, ClaimApproved):
        return [Update("worker_claims", {"claim_id": data.claim_id}, {"status": "approved"})]
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
    event_types: frozenset[str] = frozenset(
        {"ClaimFiled", "ClaimApproved", "ClaimRejected", "ClaimReopened", "ClaimPaid"}
    )

    async def changes(self, conn: DbConnection, events: Sequence[Appended]) -> Sequence[RowChange]:
        return [change for event in events for change in registry_changes(event)]

    async def restored(self, conn: DbConnection) -> None:
        return None
