"""Claims react to the facts other services record: a claim waiting on arrears is decided once
they are paid, and a rejection on another service's facts is revised when facts that service
had recorded before the rejection arrive only after it (committed by the producer after it
answered that its outbox was published, just before the decision): a decision across services
is never final on facts older than what the producer had committed. The revision judges only
the facts recorded before the rejection (the read models keep when each was recorded): a fact
recorded since, which claims may read first from another topic, would otherwise make the
outcome depend on the order claims reads enrolment's and billing's topics.

Reactions (``shared.eventstore.reactions``): each claim to decide again becomes a
``Reconsider`` command for the command handler, in the transaction that consumes the fact (and
keeps the read model beside it), so the heir never files twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from contract.events.billing import PremiumPaid
from contract.events.enrolment import CoverageEnded, CoverageStarted
from contract.readmodels.coverage import CoveragesProjection
from services.claims.domain import REVISABLE, Reconsider
from services.claims.projections import PaidMonthsProjection
from services.claims.service import ClaimsService, stream_of
from shared.db import DbConnection
from shared.eventstore.reactions import Reacted, Reacting
from shared.projection.decode import ConsumedEvent


async def claims_to_reconsider(
    service: ClaimsService, conn: DbConnection, worker_id: uuid.UUID, recorded_at: datetime
) -> list[Reacted]:
    """The worker's waiting claims, and its rejections on other services' facts decided after
    the producer recorded the fact now consumed (``recorded_at``)."""
    # One decision at a time per worker: the duplicate-death rule then holds.
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", str(worker_id))
    # Which claims to decide again, found in the registry; each is decided on its own stream.
    rows = await conn.fetch(
        f"SELECT claim_id, status, decided_at FROM {service.schema}.worker_claims "
        "WHERE worker_id = $1 "
        "AND (status = 'pending' OR (status = 'rejected' AND decided_at >= $2 "
        "AND string_to_array(reasons, ',') && $3::text[]))",
        worker_id,
        recorded_at,
        sorted(REVISABLE),
    )
    reacted = []
    for row in rows:
        claim = await service.claim_as_filed(conn, row["claim_id"])
        # A waiting claim on every fact read; a rejection on those recorded before it, so
        # that facts recorded since (read first from another topic) do not decide it.
        as_of = row["decided_at"] if row["status"] == "rejected" else None
        facts = await service.facts(conn, claim, as_of)
        command = Reconsider(claim, facts, service.clock(), recorded_at, as_of)
        stream = stream_of(claim.claim_id)
        # Several claims may follow one fact: exactly once by the consumed position.
        reacted.append(Reacted(stream, service.rules, command, worker_id, caused=False))
    return reacted


@dataclass(frozen=True)
class PaymentReactions:
    service: ClaimsService
    name: str = "paid_months"
    sources: Sequence[str] = ("billing",)
    event_types: frozenset[str] = frozenset({"PremiumPaid"})

    async def commands(self, conn: DbConnection, event: ConsumedEvent) -> Sequence[Reacted]:
        if not isinstance(event.data, PremiumPaid):
            return []
        worker_id, recorded_at = event.data.worker_id, event.envelope.recorded_at
        return await claims_to_reconsider(self.service, conn, worker_id, recorded_at)


@dataclass(frozen=True)
class CoverageFactReactions:
    service: ClaimsService
    name: str = "coverages"
    sources: Sequence[str] = ("enrolment",)
    event_types: frozenset[str] = frozenset({"CoverageStarted", "CoverageEnded"})

    async def commands(self, conn: DbConnection, event: ConsumedEvent) -> Sequence[Reacted]:
        if not isinstance(event.data, CoverageStarted | CoverageEnded):
            return []
        worker_id, recorded_at = event.data.worker_id, event.envelope.recorded_at
        return await claims_to_reconsider(self.service, conn, worker_id, recorded_at)


def payment_reactions(service: ClaimsService) -> Reacting:
    """The waiting claims decided again as months are paid, and the paid-months read model."""
    return Reacting(PaymentReactions(service), service.handler, PaidMonthsProjection())


def coverage_reactions(service: ClaimsService) -> Reacting:
    """Rejections on coverage revised when coverage recorded before them arrives, and the
    coverage read model."""
    return Reacting(CoverageFactReactions(service), service.handler, CoveragesProjection())
