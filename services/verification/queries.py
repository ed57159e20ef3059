"""Verification's reads: a case and its stage, the worklists, the decree annex, the quota and
budget a designation is decided against."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import date, datetime

from pydantic import BaseModel, Field

from services.verification.service import STAGE_SQL, VerificationService
from shared.scope import PROFILE_FIELDS, AreaScope, KecamatanCode

# The area code of the whole city: a worklist of it is every case of the caller's reach.
CITY_AREA = "33.75"
# How deep a worklist is paged: past this, the oldest cases are to be decided first.
MAX_WORKLIST_OFFSET = 100_000


class CaseView(BaseModel):
    worker_id: uuid.UUID
    kelurahan_code: str | None
    kecamatan_code: str | None
    birth_date: date | None
    registered_at: datetime | None
    corrected_at: datetime | None
    last_level: str | None
    last_outcome: str | None
    decided_at: datetime | None
    reasons: str | None
    cohort: str | None
    fiscal_year: int | None
    cover_months: int | None
    coverage_start: date | None
    decree_ref: str | None
    stage: str


class WaitingCase(BaseModel):
    worker_id: uuid.UUID
    kelurahan_code: str | None
    registered_at: datetime | None
    corrected_at: datetime | None


class Worklist(BaseModel):
    level: str
    area: str
    pending: int
    cases: list[WaitingCase]


class Designated(BaseModel):
    worker_id: uuid.UUID
    kelurahan_code: str | None
    kecamatan_code: str | None
    cover_months: int
    coverage_start: date
    decree_ref: str
    designated_at: datetime


class CohortCounter(BaseModel):
    cohort: str
    quota: int
    designated: int
    quota_left: int
    allocated: int = Field(description="Budget allocated to the cohort, in rupiah.")
    committed: int = Field(description="What its designations' cover costs, in rupiah.")
    budget_left: int


class DesignationCounters(BaseModel):
    fiscal_year: int
    cohorts: list[CohortCounter]


class Designations(BaseModel):
    fiscal_year: int
    cohort: str
    count: int
    workers: list[Designated]


async def case(
    service: VerificationService, worker_id: uuid.UUID, scope: AreaScope
) -> CaseView | None:
    """The case, if it is in the caller's area; the profile only for roles acting on people."""
    within = scope.sql_filter(2, "kelurahan_code", "kecamatan_code")
    row = await service.pool.fetchrow(
        f"SELECT *, {STAGE_SQL} AS stage FROM {service.schema}.cases "
        f"WHERE worker_id = $1 AND {within.condition}",
        worker_id,
        *within.args,
    )
    if row is None:
        return None
    found = dict(row)
    if not scope.acts_on_people:
        found |= dict.fromkeys(PROFILE_FIELDS & found.keys())
    return CaseView.model_validate(found)


async def worklist(
    service: VerificationService,
    level: str,
    area: str,
    limit: int,
    offset: int,
    scope: AreaScope,
) -> Worklist:
    """Cases waiting at a level in an area (a kelurahan or kecamatan code, or the whole city)
    within the scope: a page of them, oldest first, and how many there are in all."""
    conditions, args = [f"{STAGE_SQL} = $1"], [level]
    if area != CITY_AREA:
        args.append(area)
        column = "kecamatan_code" if KecamatanCode.parse(area) else "kelurahan_code"
        conditions.append(f"{column} = $2")
    within = scope.sql_filter(len(args) + 1, "kelurahan_code", "kecamatan_code")
    conditions.append(within.condition)
    args.extend(within.args)
    where = " AND ".join(conditions)
    rows = await service.pool.fetch(
        f"SELECT worker_id, kelurahan_code, registered_at, corrected_at "
        f"FROM {service.schema}.cases WHERE {where} ORDER BY registered_at, worker_id "
        f"LIMIT ${len(args) + 1} OFFSET ${len(args) + 2}",
        *args,
        limit,
        offset,
    )
    count = await service.pool.fetchval(
        f"SELECT count(*) FROM {service.schema}.cases WHERE {where}", *args
    )
    cases = [WaitingCase.model_validate(dict(r)) for r in rows]
    return Worklist(level=level, area=area, pending=count, cases=cases)


async def designations(service: VerificationService, fiscal_year: int, cohort: str) -> Designations:
    rows = await service.pool.fetch(
        f"SELECT d.worker_id, c.kelurahan_code, c.kecamatan_code, d.cover_months, "
        f"d.coverage_start, d.decree_ref, d.designated_at FROM {service.schema}.designations d "
        f"JOIN {service.schema}.cases c USING (worker_id) "
        "WHERE d.fiscal_year = $1 AND d.cohort = $2 ORDER BY c.kelurahan_code, d.designated_at",
        fiscal_year,
        cohort,
    )
    workers = [Designated.model_validate(dict(r)) for r in rows]
    return Designations(fiscal_year=fiscal_year, cohort=cohort, count=len(workers), workers=workers)


def decree_annex(designations: Designations) -> str:
    """The designation list as the decree's annex: numbered CSV rows."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            "no",
            "worker_id",
            "kelurahan_code",
            "kecamatan_code",
            "cover_months",
            "coverage_start",
            "decree_ref",
        ]
    )
    for number, w in enumerate(designations.workers, start=1):
        writer.writerow(
            [
                number,
                w.worker_id,
                w.kelurahan_code,
                w.kecamatan_code,
                w.cover_months,
                w.coverage_start,
                w.decree_ref,
            ]
        )
    return out.getvalue()


async def counters(service: VerificationService, fiscal_year: int) -> DesignationCounters:
    """Per cohort, the counts the next designation of the year is decided against: designated
    of the quota (the policy governing the year's end), budget committed of allocated."""
    rows = await service.pool.fetch(
        f"SELECT cohort, coalesce(d.designated, 0) AS designated, "
        f"coalesce(d.committed, 0)::bigint AS committed, coalesce(b.allocated, 0)::bigint "
        f"AS allocated FROM {service.schema}.designation_counts d "
        f"FULL JOIN (SELECT * FROM {service.schema}.budgets WHERE fiscal_year = $1) b "
        "USING (fiscal_year, cohort) WHERE fiscal_year = $1",
        fiscal_year,
    )
    counted = {r["cohort"]: r for r in rows}
    policy = service.book.governing(date(fiscal_year, 12, 31))
    cohorts = []
    for cohort, rule in policy.cohorts.items():
        row = counted.get(cohort)
        designated = row["designated"] if row else 0
        allocated = row["allocated"] if row else 0
        committed = row["committed"] if row else 0
        cohorts.append(
            CohortCounter(
                cohort=cohort,
                quota=rule.default_quota,
                designated=designated,
                quota_left=max(0, rule.default_quota - designated),
                allocated=allocated,
                committed=committed,
                budget_left=allocated - committed,
            )
        )
    return DesignationCounters(fiscal_year=fiscal_year, cohorts=cohorts)
