"""Claims' read models: coverage and paid months (from enrolment's and billing's events), and
the claims themselves."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from contract.events.billing import PremiumPaid
from contract.events.claims import (
    ClaimApproved,
    ClaimFiled,
    ClaimPaid,
    ClaimRejected,
    ClaimReopened,
    ScholarshipInstalmentApproved,
)
from contract.readmodels.coverage import CoveragesProjection
from shared.eventstore.migrations import Migration
from shared.projection.changes import RowChange, Update, Upsert
from shared.projection.decode import ConsumedEvent

PAID_MONTHS_TABLE = Migration(
    "paid_months_v1",
    """
    CREATE TABLE {schema}.paid_months (
        worker_id uuid NOT NULL,
        period    text NOT NULL,
        paid_on   date NOT NULL,
        PRIMARY KEY (worker_id, period)
    );
    """,
)
# When billing recorded the payment (its envelope's recorded_at), for the same reason as the
# coverages' (``contract.readmodels.coverage``).
PAID_MONTHS_RECORDED = Migration(
    "paid_months_recorded_at",
    "ALTER TABLE {schema}.paid_months ADD COLUMN recorded_at timestamptz;",
)
CLAIMS_TABLE = Migration(
    "claims_v1",
    """
    CREATE TABLE {schema}.claims (
        claim_id      uuid PRIMARY KEY,
        worker_id     uuid NOT NULL,
        benefit       text NOT NULL,
        kind          text NOT NULL,
        incident_date date NOT NULL,
        filed_at      timestamptz NOT NULL,
        status        text NOT NULL,      -- pending, approved, rejected, paid
        total         bigint,
        reasons       text,
        note          text,
        paid_on       date,
        payment_ref   text
    );
    CREATE INDEX ON {schema}.claims (worker_id);
    """,
)


@dataclass(frozen=True)
class PaidMonthsProjection:
    name: str = "paid_months"
    sources: Sequence[str] = ("billing",)
    event_types: frozenset[str] = frozenset({"PremiumPaid"})
    migrations: Sequence[Migration] = (PAID_MONTHS_TABLE, PAID_MONTHS_RECORDED)
    tables: Sequence[str] = ("paid_months",)

    def apply(self, event: ConsumedEvent) -> Sequence[RowChange]:
        data = event.data
        if isinstance(data, PremiumPaid):
            key = {"worker_id": data.worker_id, "period": data.period}
            paid = {"paid_on": data.paid_on, "recorded_at": event.envelope.recorded_at}
            return [Upsert("paid_months", key, paid)]
        return []


@dataclass(frozen=True)
class ClaimsProjection:
    name: str = "claims"
    sources: Sequence[str] = ("claims",)
    event_types: frozenset[str] = frozenset(
        {
            "ClaimFiled",
            "ClaimApproved",
            "ClaimRejected",
            "ClaimReopened",
            "ScholarshipInstalmentApproved",
            "ClaimPaid",
        }
    )
    migrations: Sequence[Migration] = (CLAIMS_TABLE,)
    tables: Sequence[str] = ("claims",)

    def apply(self, event: ConsumedEvent) -> Sequence[RowChange]:
        data = event.data
        if isinstance(data, ClaimFiled):
            return [
                Upsert(
                    "claims",
                    {"claim_id": data.claim_id},
                    {
                        "worker_id": data.worker_id,
                        "benefit": data.benefit,
                        "kind": data.kind,
                        "incident_date": data.incident_date,
                        "filed_at": event.envelope.recorded_at,
                        "status": "pending",
                    },
                )
            ]
        key = {"claim_id": getattr(data, "claim_id", None)}
        if isinstance(data, ClaimApproved):
            # Also a rejection revised on facts that arrived late: its reasons no longer hold.
            values = {
                "status": "approved",
                "total": data.total,
                "note": data.policy_note,
                "reasons": None,
            }
            return [Update("claims", key, values)]
        if isinstance(data, ClaimRejected):
            values = {
                "status": "rejected",
                "reasons": ",".join(data.reasons),
                "note": data.policy_note,
            }
            return [Update("claims", key, values)]
        if isinstance(data, ScholarshipInstalmentApproved):
            # The next payment is this school year's instalment.
            values = {
                "status": "approved",
                "total": data.item.amount,
                "note": data.item.description,
            }
            return [Update("claims", key, values)]
        if isinstance(data, ClaimReopened):
            values = {"status": "pending", "reasons": None, "note": data.policy_note}
            return [Update("claims", key, values)]
        if isinstance(data, ClaimPaid):
            values = {"status": "paid", "paid_on": data.paid_on, "payment_ref": data.payment_ref}
            return [Update("claims", key, values)]
        return []


PROJECTIONS = (CoveragesProjection(), PaidMonthsProjection(), ClaimsProjection())
