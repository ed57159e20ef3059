"""Verification's write side after a restore of its store: designations per cohort and year."""

from __future__ import annotations

from collections import Counter

from services.verification.domain import designation_cost
from services.verification.service import VerificationService
from shared.db import DbConnection
from shared.events.verification import Verified


async def rebuild_write_model(service: VerificationService, conn: DbConnection) -> int:
    """The quota and budget counters, from every city-level verification (a designation).
    Returns the number of designations counted."""
    designated: Counter[tuple[int, str]] = Counter()
    committed: Counter[tuple[int, str]] = Counter()
    for row in await conn.fetch(
        f"SELECT body::jsonb -> 'data' AS data FROM {service.schema}.events "
        "WHERE event_type = 'Verified' AND body::jsonb -> 'data' ->> 'level' = 'city'"
    ):
        verified = Verified.model_validate_json(row["data"])
        # The contract guarantees these at city level (Verified's own validator).
        assert verified.fiscal_year is not None
        assert verified.cohort is not None
        assert verified.cover_months is not None
        assert verified.coverage_start is not None
        cell = (verified.fiscal_year, verified.cohort)
        designated[cell] += 1
        committed[cell] += designation_cost(
            verified.cover_months, service.book, verified.coverage_start
        )
    await conn.executemany(
        f"INSERT INTO {service.schema}.designation_counts VALUES ($1, $2, $3, $4)",
        [
            (year, cohort, count, committed[year, cohort])
            for (year, cohort), count in designated.items()
        ],
    )
    return designated.total()
