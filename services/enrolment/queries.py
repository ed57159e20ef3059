"""Enrolment's reads: workers (personal data only for the roles that may see it, opened with
the worker's key), the summary by status and cohort, coverage on a date."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from pydantic import BaseModel, Field

from services.enrolment.service import EnrolmentService
from shared.auth import Principal
from shared.events.enrolment import WorkerPersonal
from shared.events.personal import open_sealed
from shared.events.types import SealedPersonal


class WorkerView(BaseModel):
    worker_id: uuid.UUID
    status: str
    kelurahan_code: str
    kecamatan_code: str
    occupation_code: str
    birth_date: date
    sex: str
    membership_no: str | None
    cohort: str | None
    coverage_start: date | None
    coverage_end: date | None
    personal: WorkerPersonal | None = Field(
        default=None, description="Only for roles allowed to see personal data; null if erased."
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


async def worker_row(service: EnrolmentService, worker_id: uuid.UUID) -> Any:
    return await service.pool.fetchrow(
        f"SELECT * FROM {service.schema}.workers WHERE worker_id = $1", worker_id
    )


async def view(service: EnrolmentService, row: Any, principal: Principal) -> WorkerView:
    personal = None
    if principal.sees_personal_data:
        sealed = SealedPersonal.model_validate_json(row["personal"])
        opened = open_sealed(sealed, await service.keys.get(sealed.key_id), WorkerPersonal)
        personal = opened if isinstance(opened, WorkerPersonal) else None
    return WorkerView(
        **{k: row[k] for k in WorkerView.model_fields if k != "personal"}, personal=personal
    )


async def workers(
    service: EnrolmentService,
    principal: Principal,
    nik: str | None,
    kelurahan: str | None,
    status: str | None,
    limit: int,
) -> list[WorkerView]:
    if nik is not None:
        worker_id = await service.worker_by_nik(nik)
        found = await worker_row(service, worker_id) if worker_id else None
        rows = [found] if found else []
    else:
        rows = await service.pool.fetch(
            f"SELECT * FROM {service.schema}.workers "
            "WHERE ($1::text IS NULL OR kelurahan_code = $1) "
            "AND ($2::text IS NULL OR status = $2) ORDER BY registered_at LIMIT $3",
            kelurahan,
            status,
            limit,
        )
    return [await view(service, row, principal) for row in rows]


async def summary(service: EnrolmentService) -> Summary:
    rows = await service.pool.fetch(
        f"SELECT status, coalesce(cohort, '-') AS cohort, count(*) AS workers "
        f"FROM {service.schema}.workers GROUP BY 1, 2 ORDER BY 1, 2"
    )
    return Summary(workers=[StatusCount.model_validate(dict(r)) for r in rows])


async def coverage_on(
    service: EnrolmentService, worker_id: uuid.UUID, on: date
) -> CoverageView | None:
    """Whether the worker was covered on a date, from their own stream; None: no worker."""
    worker, version = await service.load(worker_id)
    if version == 0:
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
