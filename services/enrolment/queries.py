"""Enrolment's reads: workers (personal data only for the roles that may see it, opened with
the worker's key), a search by name or NIK, the summary by status and cohort, coverage on a
date."""

from __future__ import annotations

import re
import uuid
from datetime import date
from typing import Any

from pydantic import BaseModel, Field

from contract.events.enrolment import WorkerPersonal
from services.enrolment.service import EnrolmentService
from shared.scope import PROFILE_FIELDS, AreaScope
from shared.sealing import SealedPersonal, open_sealed

# Names are sealed with each worker's key, so a name is matched in the opened records of the
# area: at most this many are opened for one search (a kelurahan holds fewer).
MAX_NAME_SEARCHED = 5000


class WorkerView(BaseModel):
    worker_id: uuid.UUID
    status: str
    kelurahan_code: str
    kecamatan_code: str
    occupation_code: str | None = Field(
        description="Only for roles that act on the person (it can tell disability or poverty)."
    )
    birth_date: date | None = Field(description="Only for roles that act on the person.")
    sex: str | None = Field(description="Only for roles that act on the person.")
    membership_no: str | None
    cohort: str | None
    coverage_start: date | None
    coverage_end: date | None
    personal: WorkerPersonal | None = Field(
        default=None, description="Only for roles allowed to see personal data; null if erased."
    )


class WorkerPage(BaseModel):
    workers: list[WorkerView]
    total: int = Field(description="Workers matching in all (the page is a slice of them).")
    offset: int
    searched_all: bool = Field(
        description="False: the area holds more workers than one name search reads "
        f"({MAX_NAME_SEARCHED}); name a kelurahan to search all of it."
    )


class StatusCount(BaseModel):
    status: str
    cohort: str
    workers: int


class Summary(BaseModel):
    workers: list[StatusCount]


class CoverageView(BaseModel):
    worker_id: uuid.UUID
    on: date
    covered: bool
    coverage_start: date | None = None
    coverage_end: date | None = None


# What a role that does not act on the person never sees: who they are, and their profile.
PERSONAL_VIEW = frozenset({"personal", *PROFILE_FIELDS})


async def worker_row(
    service: EnrolmentService, worker_id: uuid.UUID | None, scope: AreaScope
) -> Any:
    """The worker's row, or None if there is none in the caller's area."""
    within = scope.sql_filter(2, "kelurahan_code", "kecamatan_code")
    return await service.pool.fetchrow(
        f"SELECT * FROM {service.schema}.workers WHERE worker_id = $1 AND {within.condition}",
        worker_id,
        *within.args,
    )


async def view(service: EnrolmentService, row: Any, scope: AreaScope) -> WorkerView:
    if not scope.acts_on_people:
        return WorkerView(
            **{k: row[k] for k in WorkerView.model_fields if k not in PERSONAL_VIEW},
            **dict.fromkeys(PROFILE_FIELDS),
        )
    sealed = SealedPersonal.model_validate_json(row["personal"])
    opened = open_sealed(sealed, await service.keys.get(sealed.key_id), WorkerPersonal)
    return WorkerView(
        **{k: row[k] for k in WorkerView.model_fields if k != "personal"},
        personal=opened if isinstance(opened, WorkerPersonal) else None,
    )


async def workers(
    service: EnrolmentService,
    scope: AreaScope,
    nik: str | None,
    kelurahan: str | None,
    status: str | None,
    limit: int,
) -> list[WorkerView]:
    if nik is not None:
        # Registered elsewhere answers as never registered: no probing beyond the area.
        found = await worker_row(service, await service.worker_by_nik(nik), scope)
        rows = [found] if found else []
    else:
        within = scope.sql_filter(4, "kelurahan_code", "kecamatan_code")
        rows = await service.pool.fetch(
            f"SELECT * FROM {service.schema}.workers "
            "WHERE ($1::text IS NULL OR kelurahan_code = $1) "
            f"AND ($2::text IS NULL OR status = $2) AND {within.condition} "
            "ORDER BY registered_at LIMIT $3",
            kelurahan,
            status,
            limit,
            *within.args,
        )
    return [await view(service, row, scope) for row in rows]


async def search(
    service: EnrolmentService,
    scope: AreaScope,
    text: str,
    kelurahan: str | None,
    status: str | None,
    offset: int,
    limit: int,
) -> WorkerPage:
    """Workers of the caller's area (and of ``kelurahan``, of ``status``, if given) whose NIK
    is ``text`` (16 digits, found through the keyed index) or whose name contains it, whatever
    the case, in the order they registered; a page of ``limit`` from ``offset``."""
    if re.fullmatch(r"[0-9]{16}", text):
        found = await workers(service, scope, text, None, None, 1)
        matching = [
            w for w in found if kelurahan in (None, w.kelurahan_code) and status in (None, w.status)
        ]
        return WorkerPage(
            workers=matching[offset : offset + limit],
            total=len(matching),
            offset=offset,
            searched_all=True,
        )
    within = scope.sql_filter(4, "kelurahan_code", "kecamatan_code")
    rows = await service.pool.fetch(
        f"SELECT * FROM {service.schema}.workers "
        "WHERE ($1::text IS NULL OR kelurahan_code = $1) AND ($2::text IS NULL OR status = $2) "
        f"AND {within.condition} ORDER BY registered_at, worker_id LIMIT $3",
        kelurahan,
        status,
        MAX_NAME_SEARCHED + 1,
        *within.args,
    )
    needle = text.casefold()
    matching = []
    for row in rows[:MAX_NAME_SEARCHED]:
        seen = await view(service, row, scope)
        if seen.personal is not None and needle in seen.personal.full_name.casefold():
            matching.append(seen)
    return WorkerPage(
        workers=matching[offset : offset + limit],
        total=len(matching),
        offset=offset,
        searched_all=len(rows) <= MAX_NAME_SEARCHED,
    )


async def summary(service: EnrolmentService, scope: AreaScope) -> Summary:
    within = scope.sql_filter(1, "kelurahan_code", "kecamatan_code")
    rows = await service.pool.fetch(
        f"SELECT status, coalesce(cohort, '-') AS cohort, count(*) AS workers "
        f"FROM {service.schema}.workers WHERE {within.condition} GROUP BY 1, 2 ORDER BY 1, 2",
        *within.args,
    )
    return Summary(workers=[StatusCount.model_validate(dict(r)) for r in rows])


async def coverage_on(
    service: EnrolmentService, worker_id: uuid.UUID, on: date, scope: AreaScope
) -> CoverageView | None:
    """Whether the worker was covered on a date, from their own stream; None: no worker in
    the caller's area."""
    worker, _ = await service.load(worker_id)
    if not worker.registered or not scope.allows(worker.kelurahan_code):
        return None
    coverage = worker.coverage_on(on)
    if coverage is None:
        return CoverageView(worker_id=worker_id, on=on, covered=False)
    return CoverageView(
        worker_id=worker_id,
        on=on,
        covered=True,
        coverage_start=coverage.start_date,
        coverage_end=coverage.ended_on or coverage.end_date,
    )
