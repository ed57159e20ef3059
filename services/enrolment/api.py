"""Enrolment's HTTP API: registration, import, corrections and queries.

Routes authenticate, validate and hand over: commands to ``services.enrolment.service``, reads
to ``services.enrolment.queries``.
"""

import uuid
from dataclasses import asdict
from datetime import date, datetime
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from contract.api import contract_router
from contract.events.enrolment import Heir, RegistrationSource, WorkerPersonal
from contract.events.types import KelurahanCode
from contract.policy.freetext import CLEAR_TEXT
from services.enrolment import queries
from services.enrolment.domain import EndCoverage
from services.enrolment.import_jobs import Importer, Job, job_in_scope, receive, report_csv
from services.enrolment.imports import MAX_BYTES, MAX_ROWS, ImportFileError
from services.enrolment.queries import CoverageView, Summary, WorkerPage, WorkerView
from services.enrolment.service import (
    Correction,
    DuplicateNikError,
    EnrolmentService,
    ErasedWorkerError,
    Registration,
    UnknownWorkerError,
)
from shared.auth import AuthSettings, Principal, Role, require_role
from shared.bounds import MAX_HEIRS, Address, Code, Nik, Note, PersonName, Phone, Reason
from shared.eventstore.handler import Handled
from shared.http import (
    PROBLEM_RESPONSES,
    Idempotency,
    body_limit,
    caller,
    command_context,
    idempotent,
    refusal,
    service_app,
    service_router,
)
from shared.scope import AreaScope


class RegisterRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    nik: Nik
    full_name: PersonName
    birth_date: date
    sex: Literal["M", "F"]
    occupation_code: Code
    kelurahan_code: KelurahanCode = Field(examples=["33.75.01.1004"])
    address: Address
    phone: Phone | None = None
    heirs: list[Heir] = Field(default_factory=list, max_length=MAX_HEIRS)


class CorrectionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[Reason, CLEAR_TEXT]
    nik: Nik | None = None
    full_name: PersonName | None = None
    address: Address | None = None
    birth_date: date | None = None
    sex: Literal["M", "F"] | None = None
    occupation_code: Code | None = None
    kelurahan_code: KelurahanCode | None = None


class WithdrawalRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    end_date: date
    note: Annotated[Note, CLEAR_TEXT] | None = None


class Appended(BaseModel):
    stream_version: int = Field(description="The worker's stream version after it; 0: no change.")


def appended(handled: Handled) -> Appended:
    if handled.response is not None:
        return Appended.model_validate(handled.response)
    return Appended(stream_version=0)


class Corrected(BaseModel):
    stream_version: int
    changed: bool = Field(description="False: nothing differed from the worker's details.")


class Registered(BaseModel):
    worker_id: uuid.UUID
    already_registered: bool


class ImportJob(BaseModel):
    import_id: uuid.UUID
    batch_id: str = Field(description="The file's digest: the same for every import of it.")
    state: Literal["queued", "running", "done", "failed"]
    rows_total: int = Field(description="The file's rows (blank lines are no rows).")
    rows_done: int = Field(description="Rows whose outcome is committed to the report.")
    registered: int
    already_registered: int = Field(
        description="Registered before under the row's key: by an earlier import of the same "
        "file, or by this one before a restart interrupted its chunk."
    )
    refused: int
    rows_per_second: float | None = Field(description="Rows done per second since it started.")
    accepted_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    failure: str | None
    report: str = Field(description="The per-row report (CSV), complete once the job is done.")


def import_job(job: Job, now: datetime) -> ImportJob:
    return ImportJob(
        **asdict(job),
        rows_per_second=job.rows_per_second(now),
        report=f"/imports/{job.import_id}/report.csv",
    )


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
IMPORT_READERS: list[Role] = ["kelurahan_officer", "kecamatan_officer", "city_admin", "auditor"]


def enrolment(request: Request) -> EnrolmentService:
    service: EnrolmentService = request.app.state.service
    return service


Caller = Annotated[Principal, Depends(caller)]
Enrolment = Annotated[EnrolmentService, Depends(enrolment)]
router = service_router()


@router.post("/workers", status_code=201)
async def register(
    body: RegisterRequest,
    principal: Caller,
    service: Enrolment,
    key: Annotated[Idempotency | None, Depends(idempotent("register", required=False))],
) -> Registered:
    """Register a worker of the officer's own kelurahan. A retry under the same
    Idempotency-Key answers the worker first registered, with ``already_registered``."""
    require_role(principal, ["kelurahan_officer"])
    scope = AreaScope.of(principal)
    scope.require(body.kelurahan_code, "register a worker")
    personal = WorkerPersonal(
        nik=body.nik,
        full_name=body.full_name,
        address=body.address,
        phone=body.phone,
        heirs=body.heirs,
    )
    registration = Registration(
        personal,
        body.birth_date,
        body.sex,
        body.occupation_code,
        body.kelurahan_code,
        RegistrationSource(channel="api"),
    )
    try:
        worker_id, handled = await service.register(registration, command_context(principal, key))
    except DuplicateNikError as error:
        raise error.seen_by(scope) from None
    return Registered(worker_id=worker_id, already_registered=handled.replayed)


@router.post(
    "/imports",
    status_code=202,
    responses={
        200: {
            "description": "The Idempotency-Key's first job (the same file sent again).",
            "model": ImportJob,
        },
        413: PROBLEM_RESPONSES[422] | {"description": f"Over {MAX_BYTES:,} bytes: split the file."},
        422: PROBLEM_RESPONSES[422]
        | {
            "description": "Not UTF-8, not CSV or XLSX, columns missing, too many rows, or an "
            "Idempotency-Key first sent with another file: nothing stored."
        },
    },
    openapi_extra={
        "requestBody": {
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                XLSX: {"schema": {"type": "string", "format": "binary"}},
            },
            "required": True,
        }
    },
)
async def import_file(
    request: Request,
    principal: Caller,
    service: Enrolment,
    response: Response,
    key: Annotated[
        Idempotency | None, Depends(idempotent("import", required=False, streamed=True))
    ],
) -> ImportJob:
    """Import a kelurahan's list: CSV (comma or semicolon separated, UTF-8 with or without a
    byte order mark) or XLSX (its first sheet); columns nik, full_name, birth_date, sex,
    occupation_code, kelurahan_code, address, phone, heir_name, heir_relationship; at most
    1,000,000 rows. The file is stored as it arrives and refused whole (nothing stored) when it
    is unreadable; an accepted file is a job, answered at once (202, ``Location``) and run in
    the background: follow it at ``GET /imports/{import_id}``. Safe to send again: each row is
    keyed by the file's digest and its number, so a file sent twice registers nobody twice (its
    rows answer ``already_registered``); under the same Idempotency-Key, the same file answers
    the first job."""
    require_role(principal, ["kelurahan_officer"])
    body_limit(request, MAX_BYTES, f"split the file (at most {MAX_ROWS:,} rows at once)")
    importer = Importer(principal.subject, principal.role, AreaScope.of(principal).area)
    try:
        job, new = await receive(service, request.stream(), importer, key.key if key else None)
    except ImportFileError as error:
        raise HTTPException(422, str(error)) from None
    response.headers["Location"] = f"/imports/{job.import_id}"
    if not new:
        response.status_code = 200
    return import_job(job, service.clock())


@router.get("/imports/{import_id}")
async def import_progress(import_id: uuid.UUID, principal: Caller, service: Enrolment) -> ImportJob:
    """An import's progress: its state, the rows done and their outcomes so far, the rate."""
    require_role(principal, IMPORT_READERS)
    job = await job_in_scope(service, import_id, AreaScope.of(principal))
    if job is None:  # or another area's: the same answer, so nothing is learnt
        raise HTTPException(404, f"no import {import_id}")
    return import_job(job, service.clock())


@router.get(
    "/imports/{import_id}/report.csv",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
async def import_report(
    import_id: uuid.UUID,
    principal: Caller,
    service: Enrolment,
) -> StreamingResponse:
    """The per-row outcome of one import, as CSV (each import of a file has its own): the rows
    done so far while it runs, every row once it is done."""
    require_role(principal, IMPORT_READERS)
    if await job_in_scope(service, import_id, AreaScope.of(principal)) is None:
        raise HTTPException(404, f"no import {import_id}")
    return StreamingResponse(report_csv(service, import_id), media_type="text/csv")


@router.post(
    "/workers/{worker_id}/corrections",
    status_code=201,
    responses={
        200: {
            "description": "Nothing differs from the worker's details: no event.",
            "model": Corrected,
        }
    },
)
async def correct(
    worker_id: uuid.UUID,
    body: CorrectionRequest,
    principal: Caller,
    service: Enrolment,
    response: Response,
    key: Annotated[Idempotency | None, Depends(idempotent("correct", required=False))],
) -> Corrected:
    """Correct a worker's details, with a reason; checked by the registration rules. Only
    what differs is a correction; a move must stay within the officer's area."""
    require_role(principal, ["kelurahan_officer"])
    scope = AreaScope.of(principal)
    correction = Correction(**body.model_dump())
    try:
        handled, version = await service.correct(
            worker_id, correction, command_context(principal, key), scope
        )
    except DuplicateNikError as error:
        raise error.seen_by(scope) from None
    if handled.result is None:
        response.status_code = 200
        return Corrected(stream_version=version, changed=False)
    return Corrected.model_validate(handled.response)


@router.post("/workers/{worker_id}/withdrawal", status_code=201)
async def withdraw(
    worker_id: uuid.UUID,
    body: WithdrawalRequest,
    principal: Caller,
    service: Enrolment,
    key: Annotated[Idempotency | None, Depends(idempotent("withdraw", required=False))],
) -> Appended:
    """End a worker's coverage on a date (city administrator)."""
    require_role(principal, ["city_admin"])
    command = EndCoverage(worker_id, "withdrawn", body.end_date, service.clock())
    return appended(await service.execute(command, command_context(principal, key)))


@router.get("/summary")
async def summary(principal: Caller, service: Enrolment) -> Summary:
    """Workers by status and cohort, in the caller's area."""
    return await queries.summary(service, AreaScope.of(principal))


@router.get("/workers/search")
async def search_workers(
    principal: Caller,
    service: Enrolment,
    q: Annotated[str, Query(min_length=2, max_length=100, description="A name, or a NIK")],
    kelurahan: Annotated[str | None, Query(pattern=r"^33\.75\.0[1-4]\.[0-9]{4}$")] = None,
    status: Annotated[Literal["registered", "covered", "ended"] | None, Query()] = None,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 25,
) -> WorkerPage:
    """Workers of the caller's area by name (any part, any case) or by NIK (through the keyed
    index), a page at a time; roles acting on the person only."""
    scope = AreaScope.of(principal)
    if not scope.acts_on_people:
        raise HTTPException(403, f"role {principal.role} may not search workers by name or NIK")
    text = q.strip()
    if len(text) < 2:
        raise HTTPException(422, "q: a search needs two characters at least, besides spaces")
    if kelurahan is not None:
        scope.require(kelurahan, "search the workers")
    return await queries.search(service, scope, text, kelurahan, status, offset, limit)


@router.get("/workers/{worker_id}")
async def get_worker(worker_id: uuid.UUID, principal: Caller, service: Enrolment) -> WorkerView:
    """A worker of the caller's area; personal data and profile only for roles acting on
    the person."""
    scope = AreaScope.of(principal)
    row = await queries.worker_row(service, worker_id, scope)
    if row is None:  # or outside the caller's area: the same answer, so nothing is learnt
        raise HTTPException(404, f"no worker {worker_id}")
    return await queries.view(service, row, scope)


@router.get("/workers")
async def find_workers(
    principal: Caller,
    service: Enrolment,
    nik: Annotated[str | None, Query(pattern=r"^[0-9]{16}$")] = None,
    kelurahan: Annotated[str | None, Query(pattern=r"^33\.75\.0[1-4]\.[0-9]{4}$")] = None,
    status: Annotated[Literal["registered", "covered", "ended"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[WorkerView]:
    """Workers of the caller's area by NIK (roles acting on the person), or by kelurahan
    and status."""
    scope = AreaScope.of(principal)
    if nik is not None and not scope.acts_on_people:
        raise HTTPException(403, f"role {principal.role} may not look workers up by NIK")
    if nik is None and kelurahan is not None:
        scope.require(kelurahan, "list the workers")
    return await queries.workers(service, scope, nik, kelurahan, status, limit)


@router.get("/workers/{worker_id}/coverage")
async def coverage_on(
    worker_id: uuid.UUID, on: date, principal: Caller, service: Enrolment
) -> CoverageView:
    """Whether the worker was covered on a date, from their own history."""
    coverage = await queries.coverage_on(service, worker_id, on, AreaScope.of(principal))
    if coverage is None:
        raise HTTPException(404, f"no worker {worker_id}")
    return coverage


def create_app(service: EnrolmentService, auth: AuthSettings) -> FastAPI:
    app = service_app(
        "enrolment",
        "Registers workers, imports kelurahan lists, and tracks coverage.",
        auth,
        router,
        service,
        published=[contract_router()],
    )

    @app.exception_handler(DuplicateNikError)
    async def duplicate(_: Request, error: DuplicateNikError) -> JSONResponse:
        # Raised as seen by the caller: the holder's id only when the caller's area reaches it.
        if error.worker_id is None:
            return refusal(409, str(error))
        return refusal(409, str(error), worker_id=str(error.worker_id))

    @app.exception_handler(UnknownWorkerError)
    async def unknown(_: Request, error: UnknownWorkerError) -> JSONResponse:
        return refusal(404, str(error))

    @app.exception_handler(ErasedWorkerError)
    async def erased(_: Request, error: ErasedWorkerError) -> JSONResponse:
        return refusal(409, str(error))

    return app
