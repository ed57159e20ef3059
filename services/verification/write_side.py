"""Verification's write side: designations per cohort and fiscal year, the quota and budget a
designation is decided against, kept from its own Verified events."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from contract.events.verification import Verified
from contract.policy import PolicyBook
from services.verification.domain import designation_cost
from shared.db import DbConnection
from shared.eventstore.inline import Appended
from shared.eventstore.migrations import Migration
from shared.projection.changes import Increment, RowChange

WRITE_MODEL = (
    Migration(
        "designation_counts",
        """
        -- Designations per cohort and year, locked by each designation: quota and budget hold.
        CREATE TABLE {schema}.designation_counts (
            fiscal_year integer NOT NULL,
            cohort      text NOT NULL,
            designated  integer NOT NULL DEFAULT 0,
            committed   bigint NOT NULL DEFAULT 0,
            PRIMARY KEY (fiscal_year, cohort)
        );
        """,
    ),
)


@dataclass(frozen=True)
class DesignationCounts:
    book: PolicyBook
    event_types: frozenset[str] = frozenset({"Verified"})

    def apply(self, verified: Verified) -> list[RowChange]:
        """A city-level verification (a designation) counts once, at its cover's cost."""
        if verified.level != "city":
            return []
        # The contract guarantees these at city level (Verified's own validator).
        assert verified.fiscal_year is not None
        assert verified.cohort is not None
        assert verified.cover_months is not None
        assert verified.coverage_start is not None
        cost = designation_cost(verified.cover_months, self.book, verified.coverage_start)
        return [
            Increment(
                "designation_counts",
                {"fiscal_year": verified.fiscal_year, "cohort": verified.cohort},
                {"designated": 1, "committed": cost},
            )
        ]

    async def changes(self, conn: DbConnection, events: Sequence[Appended]) -> Sequence[RowChange]:
        changes: list[RowChange] = []
        for event in events:
            assert isinstance(event.data, Verified)
            changes += self.apply(event.data)
        return changes

    async def restored(self, conn: DbConnection) -> None:
        return None
