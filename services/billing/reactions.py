"""Billing reacts to enrolment's coverage as it arrives, so that no invoice rests for good on
coverage billing had not seen when the month was run:

- a coverage ending early: months invoiced that it no longer includes are cancelled, so a death
  (or a withdrawal) recorded after a month was invoiced leaves no premium owed for that person
  after it, whichever arrived first (a ``CancelLines`` command on each invoice's stream);
- a coverage arriving after a month it includes was run (enrolment had recorded it, but it was
  still in enrolment's outbox, or billing's consumer lagged), whether that run invoiced
  somebody or found nobody (NothingInvoiced): that month is invoiced for it at once, on a
  supplementary invoice (a ``RunBilling`` command), as a later run would.

Reactions (``shared.eventstore.reactions``) in the transaction that keeps the coverage read model.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from contract.events.enrolment import CoverageEnded, CoverageStarted
from contract.events.types import Premium
from contract.policy.membership import period_of, periods_between
from contract.readmodels.coverage import CoveragesProjection
from services.billing.invoicing import CancelLines, CoverageLine, RunBilling, month_bounds
from services.billing.service import BillingService
from services.billing.write_side import MONTH_RUN
from shared.db import DbConnection
from shared.eventstore.reactions import Reacted, Reacting
from shared.projection.decode import ConsumedEvent


@dataclass(frozen=True)
class CoverageEndReactions:
    service: BillingService
    name: str = "coverages"
    sources: Sequence[str] = ("enrolment",)
    # Both kept in the coverage read model beside it; only an ending asks for a command.
    event_types: frozenset[str] = frozenset({"CoverageStarted", "CoverageEnded"})

    async def commands(self, conn: DbConnection, event: ConsumedEvent) -> Sequence[Reacted]:
        data = event.data
        if isinstance(data, CoverageStarted):
            return await self._months_already_run(conn, event, data)
        if not isinstance(data, CoverageEnded):
            return []
        rows = await conn.fetch(
            f"SELECT l.*, i.paid_on FROM {self.service.schema}.invoice_lines l "
            f"JOIN {self.service.schema}.invoices i USING (invoice_id) "
            "WHERE l.coverage_id = $1 AND NOT l.cancelled AND l.period > $2 "
            "ORDER BY l.invoice_id, l.period",
            data.coverage_id,
            period_of(data.end_date),
        )
        by_invoice = defaultdict(list)
        for row in rows:
            by_invoice[(row["invoice_id"], row["paid_on"] is not None)].append(row)
        reacted = []
        for (invoice_id, paid), lines in by_invoice.items():
            command = CancelLines(
                invoice_id,
                tuple(
                    CoverageLine(
                        r["worker_id"],
                        r["coverage_id"],
                        r["cohort"],
                        r["fiscal_year"],
                        Premium(total=r["total"], jkk=r["jkk"], jkm=r["jkm"]),
                    )
                    for r in lines
                ),
                tuple(r["period"] for r in lines),
                data.reason,
                paid,
                event.envelope.recorded_at,
            )
            # Several invoices may follow one ending: exactly once by the consumed position.
            stream = f"invoice-{invoice_id}"
            reacted.append(Reacted(stream, self.service.invoices, command, None, caused=False))
        return reacted

    async def _months_already_run(
        self, conn: DbConnection, event: ConsumedEvent, data: CoverageStarted
    ) -> list[Reacted]:
        schema = self.service.schema
        months = periods_between(data.start_date, data.end_date)
        for period in months:  # as a run of the month does, in order: one at a time per month
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"billing:{period}")
        run = MONTH_RUN.format(schema=schema, period="months.period")
        rows = await conn.fetch(
            f"SELECT period FROM unnest($1::text[]) AS months(period) WHERE {run} "
            f"AND NOT EXISTS (SELECT 1 FROM {schema}.invoice_lines l WHERE l.worker_id = $2 "
            "AND l.period = months.period) ORDER BY period",
            months,
            data.worker_id,
        )
        premium = data.monthly_premium
        line = CoverageLine(
            data.worker_id, data.coverage_id, data.cohort, data.fiscal_year, premium
        )
        reacted = []
        for row in rows:
            period = row["period"]
            # The same invoice however often the coverage is read: named by it and the month.
            invoice_id = uuid.uuid5(SUPPLEMENTARY, f"{event.envelope.event_id}:{period}")
            policy = self.service.book.in_force(month_bounds(period)[0]).version
            command = RunBilling(
                invoice_id, period, (line,), True, event.envelope.recorded_at, policy
            )
            stream = f"invoice-{invoice_id}"
            reacted.append(Reacted(stream, self.service.invoices, command, None, caused=False))
        return reacted


SUPPLEMENTARY = uuid.UUID("3c1f8a52-7d0e-4b8e-9b1a-5e2f4c6d8a90")


def coverage_end_reactions(service: BillingService) -> Reacting:
    """The coverage read model, and the months it no longer includes cancelled."""
    return Reacting(CoverageEndReactions(service), service.handler, CoveragesProjection())
