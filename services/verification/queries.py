"""Verification's reads: a case and its stage, the worklists, the decree annex."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import date, datetime

from pydantic import BaseModel

from services.verification.service import STAGE_SQL, VerificationService
from shared.scope import PROFILE_FIELDS, AreaScope, KecamatanCode


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
    service: VerificationService, level: str, area: str, limit: int, scope: AreaScope
) -> Worklist:
    """Cases waiting at a level in an area (a kelurahan or kecamatan code) within the scope."""
    column = "kecamatan_code" if KecamatanCode.parse(area) else "kelurahan_code"
    within = scope.sql_filter(3, "kelurahan_code", "kecamatan_code")
    where = f"{column} = $1 AND {STAGE_SQL} = $2 AND {within.condition}"
    rows = await service.pool.fetch(
        f"SELECT worker_id, kelurahan_code, registered_at, corrected_at "
        f"FROM {service.schema}.cases WHERE {where} ORDER BY registered_at "
        f"LIMIT ${3 + len(within.args)}",
        area,
        level,
        *within.args,
        limit,
    )
    count = await service.pool.fetchval(
        f"SELECT count(*) FROM {service.schema}.cases WHERE {where}", area, level, *within.args
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
