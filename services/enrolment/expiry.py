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

log = logging.getLogger(__name__)


async def end_expired_coverages(service: EnrolmentService, today: date) -> int:
    """End every coverage period whose last day is before ``today`` (each period, also one a
    renewal followed); return how many were ended. The rules say why it ended: a period cut at
    the age limit ends as ``age_limit``, any other as ``expired``."""
    rows = await service.pool.fetch(
        f"SELECT worker_id, end_date FROM {service.schema}.coverages "
        "WHERE ended_on IS NULL AND end_date < $1 ORDER BY worker_id, end_date",
        today,
    )
    ended = 0
    for row in rows:
        command = EndCoverage(row["worker_id"], "expired", row["end_date"], service.clock())
        context = CommandContext(
            "system",
            "system",
            uuid.uuid4(),
            idempotency_key=f"expiry:{row['worker_id']}:{row['end_date']}",
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
