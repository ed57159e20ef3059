"""Billing reacts to coverage ending early: months invoiced that the coverage no longer
includes are cancelled, so a death (or a withdrawal) recorded after a month was invoiced leaves
no premium owed for that person after it, whichever arrived first.

A reaction (``shared.eventstore.reactions``) in the transaction that keeps the coverage read
model: each invoice with such lines gets a ``CancelLines`` command on its own stream.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from services.billing.invoicing import CancelLines, CoverageLine
from services.billing.service import BillingService
from shared.db import DbConnection
from shared.events.enrolment import CoverageEnded
from shared.events.types import Premium
from shared.eventstore.reactions import Reacted, Reacting
from shared.policy.membership import period_of
from shared.projection.decode import ConsumedEvent
from shared.readmodels.coverage import CoveragesProjection


@dataclass(frozen=True)
class CoverageEndReactions:
    service: BillingService
    name: str = "coverages"
    sources: Sequence[str] = ("enrolment",)
    # Both kept in the coverage read model beside it; only an ending asks for a command.
    event_types: frozenset[str] = frozenset({"CoverageStarted", "CoverageEnded"})

    async def commands(self, conn: DbConnection, event: ConsumedEvent) -> Sequence[Reacted]:
        data = event.data
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


def coverage_end_reactions(service: BillingService) -> Reacting:
    """The coverage read model, and the months it no longer includes cancelled."""
    return Reacting(CoverageEndReactions(service), service.handler, CoveragesProjection())
