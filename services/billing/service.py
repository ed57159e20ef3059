"""Billing's application service (budget allocations so far)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import asyncpg

from services.billing.budget import AllocateBudget, decide_allocation
from shared.eventstore import AppendResult, EventStore, NewEvent
from shared.eventstore.store import CommandContext
from shared.policy import PolicyBook

SERVICE = "billing"


class BillingService:
    def __init__(
        self,
        pool: asyncpg.Pool,
        book: PolicyBook,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        schema: str = SERVICE,
    ) -> None:
        self.pool = pool
        self.schema = schema
        self.book = book
        self.clock = clock
        self.store = EventStore(pool, schema, SERVICE, clock=clock)

    async def allocate(self, command: AllocateBudget, context: CommandContext) -> AppendResult:
        event = decide_allocation(command)
        policy = self.book.in_force(command.at.date())
        new = NewEvent(
            "BudgetAllocated",
            event.model_dump(mode="json"),
            occurred_at=command.at,
            policy_version=policy.version,
        )
        # All allocations of a year form one stream, in the order the city made them.
        return await self.store.append(f"budget-{command.fiscal_year}", None, [new], context)

    async def budget_report(self, fiscal_year: int) -> list[dict[str, object]]:
        """Per cohort: allocated, committed (covered worker-months x premium), remaining."""
        rows = await self.pool.fetch(
            f"""
            WITH allocated AS (
                SELECT cohort, sum(allocated) AS allocated FROM {self.schema}.allocations
                WHERE fiscal_year = $1 GROUP BY cohort
            ), committed AS (
                SELECT cohort, sum(monthly_premium * (
                    (extract(year FROM coalesce(ended_on, end_date)) * 12
                     + extract(month FROM coalesce(ended_on, end_date)))
                    - (extract(year FROM start_date) * 12 + extract(month FROM start_date)) + 1
                ))::bigint AS committed
                FROM {self.schema}.coverages WHERE fiscal_year = $1 GROUP BY cohort
            )
            SELECT cohort, coalesce(a.allocated, 0)::bigint AS allocated,
                   coalesce(c.committed, 0)::bigint AS committed
            FROM allocated a FULL JOIN committed c USING (cohort) ORDER BY cohort
            """,
            fiscal_year,
        )
        return [
            {
                "cohort": r["cohort"],
                "allocated": r["allocated"],
                "committed": r["committed"],
                "remaining": r["allocated"] - r["committed"],
                "over_committed": r["committed"] > r["allocated"],
            }
            for r in rows
        ]
