"""Verification's read models: the cases (worklists, decree annex) and the cohort budgets.

Each event writes only its own columns, so events from different topics (enrolment's facts,
verification's decisions) give the same rows in whatever order a replay reads them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from contract.events.billing import BudgetAllocated
from contract.events.enrolment import CoverageEnded, WorkerDetailsCorrected, WorkerRegistered
from contract.events.verification import VerificationRejected, Verified
from shared.eventstore.migrations import Migration
from shared.projection.changes import Increment, RowChange, Upsert
from shared.projection.decode import ConsumedEvent

CASES_TABLE = Migration(
    "cases_v1",
    """
    CREATE TABLE {schema}.cases (
        worker_id        uuid PRIMARY KEY,
        kelurahan_code   text,
        kecamatan_code   text,
        birth_date       date,
        registered_at    timestamptz,
        corrected_at     timestamptz,
        last_level       text,          -- the last decision's level
        last_outcome     text,          -- verified or rejected
        decided_at       timestamptz,
        reasons          text,
        cohort           text,
        fiscal_year      integer,
        cover_months     integer,
        coverage_start   date,
        decree_ref       text
    );
    CREATE INDEX ON {schema}.cases (kelurahan_code);
    CREATE INDEX ON {schema}.cases (fiscal_year, cohort);
    """,
)
# The person's death, from enrolment's record of it: a deceased person is never designated.
CASES_DEATHS = Migration(
    "cases_died_on",
    "ALTER TABLE {schema}.cases ADD COLUMN died_on date;",
)
DESIGNATIONS_TABLE = Migration(
    "designations_v1",
    """
    -- One row per designation: a renewed worker is in the annex of every year designated.
    CREATE TABLE {schema}.designations (
        worker_id      uuid NOT NULL,
        fiscal_year    integer NOT NULL,
        cohort         text NOT NULL,
        cover_months   integer NOT NULL,
        coverage_start date NOT NULL,
        decree_ref     text NOT NULL,
        designated_at  timestamptz NOT NULL,
        PRIMARY KEY (worker_id, fiscal_year)
    );
    """,
)
BUDGETS_TABLE = Migration(
    "budgets_v1",
    """
    CREATE TABLE {schema}.budgets (
        fiscal_year integer NOT NULL,
        cohort      text NOT NULL,
        allocated   bigint NOT NULL,
        PRIMARY KEY (fiscal_year, cohort)
    );
    """,
)


@dataclass(frozen=True)
class CasesProjection:
    name: str = "cases"
    sources: Sequence[str] = ("enrolment", "verification")
    event_types: frozenset[str] = frozenset(
        {
            "WorkerRegistered",
            "WorkerDetailsCorrected",
            "CoverageEnded",
            "Verified",
            "VerificationRejected",
        }
    )
    migrations: Sequence[Migration] = (CASES_TABLE, DESIGNATIONS_TABLE, CASES_DEATHS)
    tables: Sequence[str] = ("cases", "designations")

    def apply(self, event: ConsumedEvent) -> Sequence[RowChange]:
        data, envelope = event.data, event.envelope
        key = {"worker_id": envelope.worker_id}
        if isinstance(data, WorkerRegistered):
            facts = {
                "kelurahan_code": data.kelurahan_code,
                "kecamatan_code": data.kecamatan_code,
                "birth_date": data.birth_date,
                "registered_at": envelope.recorded_at,
            }
            return [Upsert("cases", key, facts)]
        if isinstance(data, WorkerDetailsCorrected):
            corrected = data.model_dump(
                include={"kelurahan_code", "kecamatan_code", "birth_date"}, exclude_none=True
            )
            return [Upsert("cases", key, {**corrected, "corrected_at": envelope.recorded_at})]
        if isinstance(data, CoverageEnded):
            if data.reason != "deceased":
                return []
            return [Upsert("cases", key, {"died_on": data.end_date})]
        if isinstance(data, Verified):
            decision: dict[str, object] = {
                "last_level": data.level,
                "last_outcome": "verified",
                "decided_at": envelope.recorded_at,
                "reasons": None,
            }
            if data.level != "city":
                return [Upsert("cases", key, decision)]
            designation = {
                "cohort": data.cohort,
                "cover_months": data.cover_months,
                "coverage_start": data.coverage_start,
                "decree_ref": data.decree_ref,
            }
            return [
                Upsert("cases", key, decision | designation | {"fiscal_year": data.fiscal_year}),
                Upsert(
                    "designations",
                    {"worker_id": envelope.worker_id, "fiscal_year": data.fiscal_year},
                    designation | {"designated_at": envelope.recorded_at},
                ),
            ]
        if isinstance(data, VerificationRejected):
            return [
                Upsert(
                    "cases",
                    key,
                    {
                        "last_level": data.level,
                        "last_outcome": "rejected",
                        "decided_at": envelope.recorded_at,
                        "reasons": ",".join(data.reasons),
                    },
                )
            ]
        return []


@dataclass(frozen=True)
class BudgetsProjection:
    """Budget allocated per fiscal year and cohort, from billing's events."""

    name: str = "budgets"
    sources: Sequence[str] = ("billing",)
    event_types: frozenset[str] = frozenset({"BudgetAllocated"})
    migrations: Sequence[Migration] = (BUDGETS_TABLE,)
    tables: Sequence[str] = ("budgets",)

    def apply(self, event: ConsumedEvent) -> Sequence[RowChange]:
        data = event.data
        if isinstance(data, BudgetAllocated):
            return [
                Increment(
                    "budgets",
                    {"fiscal_year": data.fiscal_year, "cohort": data.cohort},
                    {"allocated": data.amount},
                )
            ]
        return []


PROJECTIONS = (CasesProjection(), BudgetsProjection())
