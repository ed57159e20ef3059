"""Claims react to billing's payments: a claim waiting on arrears is decided once they are paid."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from services.claims.projections import PAID_MONTHS_TABLE, PaidMonthsProjection
from services.claims.service import ClaimsService
from shared.db import DbConnection
from shared.events.billing import PremiumPaid
from shared.eventstore.migrations import Migration
from shared.projection.changes import RowChange
from shared.projection.decode import ConsumedEvent


@dataclass(frozen=True)
class PaymentReactions:
    """The paid-months read model, and the waiting claims decided again as months are paid."""

    service: ClaimsService
    name: str = "paid_months"
    sources: Sequence[str] = ("billing",)
    event_types: frozenset[str] = frozenset({"PremiumPaid"})
    migrations: Sequence[Migration] = (PAID_MONTHS_TABLE,)
    tables: Sequence[str] = ("paid_months",)
    _rows: PaidMonthsProjection = field(default_factory=PaidMonthsProjection)

    def apply(self, event: ConsumedEvent) -> Sequence[RowChange]:
        return self._rows.apply(event)

    async def react(self, conn: DbConnection, event: ConsumedEvent) -> None:
        if isinstance(event.data, PremiumPaid):
            await self.service.reconsider(conn, event.data.worker_id)
