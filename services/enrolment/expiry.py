"""Coverage that has run its course ends: at the end of its period, or at the age limit.

A background job of the enrolment process; each ending is keyed by worker and end date, so
running it twice (or on two replicas) ends a coverage once.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Coroutine
from datetime import date
from typing import Any

from services.enrolment.domain import EndCoverage
from services.enrolment.service import EnrolmentService
from shared.decisions import RefusedError
from shared.eventstore.store import CommandContext
from shared.policy.eligibility import coverage_age_limit_end

log = logging.getLogger(__name__)


async def end_expired_coverages(service: EnrolmentService, today: date) -> int:
    """End every coverage whose last day is before ``today``; return how many were ended."""
    rows = await service.pool.fetch(
        f"SELECT worker_id, birth_date, coverage_end FROM {service.schema}.workers "
        "WHERE status = 'covered' AND coverage_end < $1",
        today,
    )
    ended = 0
    for row in rows:
        limit = coverage_age_limit_end(
            row["birth_date"], service.book.in_force(today).coverage_age_limit
        )
        at_age_limit = row["coverage_end"] >= limit
        command = EndCoverage(
            row["worker_id"],
            "age_limit" if at_age_limit else "expired",
            row["coverage_end"],
            service.clock(),
        )
        context = CommandContext(
            "system",
            "system",
            uuid.uuid4(),
            idempotency_key=f"expiry:{row['worker_id']}:{row['coverage_end']}",
        )
        try:
            handled = await service.execute(command, context)
            if handled.result is not None and not handled.replayed:
                ended += 1
        except RefusedError as refused:
            log.info("coverage of %s not ended: %s", row["worker_id"], refused)
    return ended


def expiry_job(
    service: EnrolmentService, today: Callable[[], date], every_seconds: float = 60.0
) -> Callable[[asyncio.Event], Coroutine[Any, Any, None]]:
    async def run(stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await end_expired_coverages(service, today())
            except Exception:  # the next round retries; the service keeps serving
                log.exception("ending expired coverages failed")
            try:
                await asyncio.wait_for(stop.wait(), timeout=every_seconds)
            except TimeoutError:
                continue

    return run
