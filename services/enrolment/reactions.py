"""What enrolment does when other services decide: designations start coverage, deaths end it.

A reaction (``shared.eventstore.reactions``): the event becomes a command for the command
handler, appended in the transaction that records the consumed position, under an idempotency
key derived from the causing event, so it happens exactly once. One the worker's rules refuse
(a deceased person designated, an overlapping period) is never dropped in silence: the causing
event is dead-lettered with the refusal as its reason, and the dead-letter alert fires.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from contract.events.claims import ClaimApproved
from contract.events.verification import Verified
from services.enrolment.domain import EndCoverage, StartCoverage
from services.enrolment.service import EnrolmentService, stream_of
from shared.db import DbConnection
from shared.eventstore.reactions import Reacted, Reacting
from shared.projection.decode import ConsumedEvent

COVERAGE_IDS = uuid.UUID("8f6f3d1e-2f57-4d0e-9a64-4b5c3e1d7a20")


@dataclass(frozen=True)
class CoverageReactions:
    """A city designation starts coverage; an approved death ends it."""

    service: EnrolmentService
    name: str = "coverage"
    sources: Sequence[str] = ("verification", "claims")
    event_types: frozenset[str] = frozenset({"Verified", "ClaimApproved"})

    async def commands(self, conn: DbConnection, event: ConsumedEvent) -> Sequence[Reacted]:
        data, envelope = event.data, event.envelope
        command: StartCoverage | EndCoverage
        if isinstance(data, Verified) and data.level == "city":
            # The contract guarantees these at city level (Verified's own validator).
            assert data.cohort is not None
            assert data.cover_months is not None
            assert data.coverage_start is not None
            assert data.fiscal_year is not None
            worker, _ = await self.service.load(data.worker_id, conn)
            command = StartCoverage(
                worker_id=data.worker_id,
                coverage_id=uuid.uuid5(COVERAGE_IDS, str(envelope.event_id)),
                membership_no=worker.membership_no or await self.service.next_membership_no(conn),
                cohort=data.cohort,
                fiscal_year=data.fiscal_year,
                cover_months=data.cover_months,
                start_date=data.coverage_start,
                decree_ref=data.decree_ref or "",
                at=envelope.recorded_at,
            )
        elif isinstance(data, ClaimApproved) and data.death_date is not None:
            command = EndCoverage(data.worker_id, "deceased", data.death_date, envelope.recorded_at)
        else:
            return []
        stream = stream_of(data.worker_id)
        return [Reacted(stream, self.service.rules, command, worker_id=data.worker_id)]


def coverage_reactions(service: EnrolmentService) -> Reacting:
    return Reacting(CoverageReactions(service), service.handler)
