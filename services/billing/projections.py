"""Billing's read models, from its own events and enrolment's coverage."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from contract.events.billing import BudgetAllocated, PremiumCancelled, PremiumInvoiced, PremiumPaid
from contract.readmodels.coverage import CoveragesProjection
from shared.eventstore.migrations import Migration
from shared.projection.changes import Increment, RowChange, Update, Upsert
from shared.projection.decode import ConsumedEvent

ALLOCATIONS_TABLE = Migration(
    "allocations_v1",
    """
    CREATE TABLE {schema}.allocations (
        fiscal_year integer NOT NULL,
        cohort      text NOT NULL,
        source      text NOT NULL,
        allocated   bigint NOT NULL,
        PRIMARY KEY (fiscal_year, cohort, source)
    );
    """,
)
PREMIUMS_TABLE = Migration(
    "premiums_v1",
    """
    CREATE TABLE {schema}.premiums (
        worker_id   uuid NOT NULL,
        period      text NOT NULL,
        invoice_id  uuid NOT NULL,
        cohort      text NOT NULL,
        fiscal_year integer NOT NULL,
        amount      integer NOT NULL,
        paid_on     date,
        payment_ref text,
        PRIMARY KEY (worker_id, period)
    );
    CREATE INDEX ON {schema}.premiums (fiscal_year, cohort);
    """,
)
PREMIUMS_CANCELLED = Migration(
    "premiums_cancelled",
    """
    -- A month cancelled after its coverage ended earlier: not owed, or owed back if paid.
    ALTER TABLE {schema}.premiums ADD COLUMN cancelled boolean NOT NULL DEFAULT false;
    ALTER TABLE {schema}.premiums ADD COLUMN refund_due boolean NOT NULL DEFAULT false;
    """,
)


@dataclass(frozen=True)
class PremiumsProjection:
    """Every worker-month invoiced, and when it was paid."""

    name: str = "premiums"
    sources: Sequence[str] = ("billing",)
    event_types: frozenset[str] = frozenset({"PremiumInvoiced", "PremiumPaid", "PremiumCancelled"})
    migrations: Sequence[Migration] = (PREMIUMS_TABLE, PREMIUMS_CANCELLED)
    tables: Sequence[str] = ("premiums",)

    def apply(self, event: ConsumedEvent) -> Sequence[RowChange]:
        data = event.data
        if isinstance(data, PremiumInvoiced):
            return [
                Upsert(
                    "premiums",
                    {"worker_id": data.worker_id, "period": data.period},
                    {
                        "invoice_id": data.invoice_id,
                        "cohort": data.cohort,
                        "fiscal_year": data.fiscal_year,
                        "amount": data.amount.total,
                    },
                )
            ]
        if isinstance(data, PremiumCancelled):
            # Its own columns only (with the line's), so the order it is read in against the
            # month's invoicing does not matter.
            return [
                Upsert(
                    "premiums",
                    {"worker_id": data.worker_id, "period": data.period},
                    {
                        "invoice_id": data.invoice_id,
                        "cohort": data.cohort,
                        "fiscal_year": data.fiscal_year,
                        "amount": data.amount.total,
                        "cancelled": True,
                        "refund_due": data.refund_due,
                    },
                )
            ]
        if isinstance(data, PremiumPaid):
            return [
                Update(
                    "premiums",
                    {"worker_id": data.worker_id, "period": data.period},
                    {"paid_on": data.paid_on, "payment_ref": data.payment_ref},
                )
            ]
        return []


@dataclass(frozen=True)
class AllocationsProjection:
    name: str = "allocations"
    sources: Sequence[str] = ("billing",)
    event_types: frozenset[str] = frozenset({"BudgetAllocated"})
    migrations: Sequence[Migration] = (ALLOCATIONS_TABLE,)
    tables: Sequence[str] = ("allocations",)

    def apply(self, event: ConsumedEvent) -> Sequence[RowChange]:
        data = event.data
        if isinstance(data, BudgetAllocated):
            key = {"fiscal_year": data.fiscal_year, "cohort": data.cohort, "source": data.source}
            return [Increment("allocations", key, {"allocated": data.amount})]
        return []


PROJECTIONS = (AllocationsProjection(), CoveragesProjection(), PremiumsProjection())
