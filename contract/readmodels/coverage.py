"""Read models of the contract's events that more than one service keeps for itself.

Each service builds its own copy in its own schema from the topics (no service reads another's
tables); the rules of the copy live here once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from contract.events.enrolment import CoverageEnded, CoverageStarted
from shared.eventstore.migrations import Migration
from shared.projection.changes import RowChange, Update, Upsert
from shared.projection.decode import ConsumedEvent

COVERAGES_TABLE = Migration(
    "coverages_v1",
    """
    CREATE TABLE {schema}.coverages (
        coverage_id     uuid PRIMARY KEY,
        worker_id       uuid NOT NULL,
        cohort          text NOT NULL,
        fiscal_year     integer NOT NULL,
        start_date      date NOT NULL,
        end_date        date NOT NULL,
        ended_on        date,
        monthly_premium integer NOT NULL,
        premium_jkk     integer NOT NULL,
        premium_jkm     integer NOT NULL
    );
    CREATE INDEX ON {schema}.coverages (worker_id);
    """,
)
# When enrolment recorded the coverage and its end (the envelopes' recorded_at): claims judges
# a revised rejection on what was known when it was decided. Rows kept before this migration
# hold none until the projection is rebuilt, and count as known all along.
COVERAGES_RECORDED = Migration(
    "coverages_recorded_at",
    """
    ALTER TABLE {schema}.coverages ADD COLUMN recorded_at timestamptz,
        ADD COLUMN ended_recorded_at timestamptz;
    """,
)


@dataclass(frozen=True)
class CoveragesProjection:
    """Every coverage period with its premium: what billing invoices."""

    name: str = "coverages"
    sources: Sequence[str] = ("enrolment",)
    event_types: frozenset[str] = frozenset({"CoverageStarted", "CoverageEnded"})
    migrations: Sequence[Migration] = (COVERAGES_TABLE, COVERAGES_RECORDED)
    tables: Sequence[str] = ("coverages",)

    def apply(self, event: ConsumedEvent) -> Sequence[RowChange]:
        data = event.data
        if isinstance(data, CoverageStarted):
            premium = data.monthly_premium
            return [
                Upsert(
                    "coverages",
                    {"coverage_id": data.coverage_id},
                    {
                        "worker_id": data.worker_id,
                        "cohort": data.cohort,
                        "fiscal_year": data.fiscal_year,
                        "start_date": data.start_date,
                        "end_date": data.end_date,
                        "monthly_premium": premium.total,
                        "premium_jkk": premium.jkk,
                        "premium_jkm": premium.jkm,
                        "recorded_at": event.envelope.recorded_at,
                    },
                )
            ]
        if isinstance(data, CoverageEnded):
            ended = {"ended_on": data.end_date, "ended_recorded_at": event.envelope.recorded_at}
            return [Update("coverages", {"coverage_id": data.coverage_id}, ended)]
        return []
