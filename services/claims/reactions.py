"""Claims react to billing's payments: a claim waiting on arrears is decided once they are paid,
and a rejection on paid months is revised when a payment billing had recorded before the
rejection arrives only after it (it was still in billing's outbox, or the consumer lagged): a
decision on another service's facts is never final on facts older than that service had.

A reaction (``shared.eventstore.reactions``): each of the worker's waiting claims becomes a
``Reconsider`` command for the command handler, in the transaction that consumes the payment
(and keeps the paid months beside it), so the heir never files twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from services.claims.domain import REVISABLE, Reconsider
from services.claims.projections import PaidMonthsProjection
from services.claims.service import ClaimsService, stream_of
from services.claims.write_side import claim_from_json
from shared.db import DbConnection
from shared.events.billing import PremiumPaid
from shared.eventstore.reactions import Reacted, Reacting
from shared.projection.decode import ConsumedEvent


@dataclass(frozen=True)
class PaymentReactions:
    service: ClaimsService
    name: str = "paid_months"
    sources: Sequence[str] = ("billing",)
    event_types: frozenset[str] = frozenset({"PremiumPaid"})

    async def commands(self, conn: DbConnection, event: ConsumedEvent) -> Sequence[Reacted]:
        if not isinstance(event.data, PremiumPaid):
            return []
        worker_id = event.data.worker_id
        # One decision at a time per worker: the duplicate-death rule then holds.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", str(worker_id))
        rows = await conn.fetch(
            f"SELECT claim, status FROM {self.service.schema}.worker_claims WHERE worker_id = $1 "
            "AND (status = 'pending' OR (status = 'rejected' AND decided_at >= $2 "
            "AND string_to_array(reasons, ',') && $3::text[]))",
            worker_id,
            event.envelope.recorded_at,
            sorted(REVISABLE),
        )
        reacted = []
        for row in rows:
            claim = claim_from_json(row["claim"])
            facts = await self.service.facts(conn, claim)
            revising = row["status"] == "rejected"
            command = Reconsider(claim, facts, self.service.clock(), revising)
            stream = stream_of(claim.claim_id)
            # Several claims may follow one payment: exactly once by the consumed position.
            reacted.append(Reacted(stream, self.service.rules, command, worker_id, caused=False))
        return reacted


def payment_reactions(service: ClaimsService) -> Reacting:
    """The waiting claims decided again as months are paid, and the paid-months read model."""
    return Reacting(PaymentReactions(service), service.handler, PaidMonthsProjection())
