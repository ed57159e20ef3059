"""What enrolment does when other services decide: designations start coverage, deaths end it.

A reaction the worker's rules refuse (a deceased person designated, an overlapping period) is
never dropped in silence: it raises, so the consumer dead-letters the causing event with the
refusal as its reason, and the dead-letter alert tells an operator.

Runs as a reactor (see ``shared.projection.writer.Reactor``): each reaction is appended in the
transaction that records the consumed position, under an idempotency key derived from the
causing event, so it happens exactly once.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from services.enrolment.domain import EndCoverage, StartCoverage
from services.enrolment.service import EnrolmentService
from shared.db import DbConnection
from shared.decisions import RefusedError
from shared.events.claims import ClaimApproved
from shared.events.verification import Verified
from shared.eventstore.migrations import Migration
from shared.eventstore.store import CommandContext, reaction_key
from shared.projection.changes import RowChange
from shared.projection.decode import ConsumedEvent

COVERAGE_IDS = uuid.UUID("8f6f3d1e-2f57-4d0e-9a64-4b5c3e1d7a20")


@dataclass(frozen=True)
class CoverageReactions:
    service: EnrolmentService
    name: str = "coverage"
    sources: Sequence[str] = ("verification", "claims")
    event_types: frozenset[str] = frozenset({"Verified", "ClaimApproved"})
    migrations: Sequence[Migration] = field(default_factory=tuple)
    tables: Sequence[str] = field(default_factory=tuple)

    def apply(self, event: ConsumedEvent) -> Sequence[RowChange]:
        return []

    async def react(self, conn: DbConnection, event: ConsumedEvent) -> None:
        data, envelope = event.data, event.envelope
        context = CommandContext(
            actor_id="system",
            actor_role="system",
            correlation_id=envelope.correlation_id,
            causation_id=envelope.event_id,
            idempotency_key=reaction_key(envelope.event_id),
        )
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
            return
        try:
            await self.service.execute(command, context, conn=conn)
        except RefusedError as refused:
            raise ReactionRefusedError(
                f"enrolment refused to act on {envelope.event_type} {envelope.event_id} for "
                f"worker {data.worker_id}: {refused}"
            ) from refused


class ReactionRefusedError(RuntimeError):
    """What another service decided cannot be carried out here; the event is dead-lettered."""
