"""Enrolment's HTTP API: registration, import, corrections and queries.

No postponed annotations here: FastAPI reads the routes' annotations, which refer to the
authentication dependency built inside ``create_app``.
"""

import uuid
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from services.enrolment.domain import EndCoverage
from services.enrolment.imports import (
    MAX_BYTES,
    MAX_ROWS,
    ImportFileError,
    import_csv,
    report_csv,
)
from services.enrolment.service import (
    Correction,
    DuplicateNikError,
    EnrolmentService,
    ErasedWorkerError,
    Registration,
    UnknownWorkerError,
)
from shared.auth import AuthSettings, Principal, require_role
from shared.events.bounds import MAX_HEIRS, Address, Code, Nik, Note, PersonName, Phone, Reason
from shared.events.enrolment import Heir, RegistrationSource, WorkerPersonal
from shared.events.personal import open_sealed
from shared.events.types import KelurahanCode, SealedPersonal
from shared.eventstore.store import CommandContext
from shared.http import body_within, refusal, service_app
from shared.logs import correlation_id
from shared.scope import PROFILE_FIELDS, AreaScope


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

    reason: Reason
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
    note: Note | None = None


class Registered(BaseModel):
    worker_id: uuid.UUID
    already_registered: bool


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


# What a role that does not act on the person never sees: who they are, and their profile.
PERSONAL_VIEW = frozenset({"personal", *PROFILE_FIELDS})


class CoverageView(BaseModel):
    worker_id: uuid.UUID
    on: date
    covered: bool
    coverage_start: date | None = None
    coverage_end: date | None = None


def create_app(service: EnrolmentService, auth: AuthSettings) -> FastAPI:
    app, router, caller = service_app(
        "enrolment",
        "Registers workers, imports kelurahan lists, and tracks coverage.",
        auth,
    )

    @app.exception_handler(DuplicateNikError)
    async def duplicate(_: Request, error: DuplicateNikError) -> JSONResponse:
        # Raised as seen by the caller: the holder's id only when the caller's area reaches it.
        holder = {"worker_id": str(error.worker_id)} if error.worker_id else {}
        return refusal(409, str(error), **holder)

    @app.exception_handler(UnknownWorkerError)
    async def unknown(_: Request, error: UnknownWorkerError) -> JSONResponse:
        return refusal(404, str(error))

    @app.exception_handler(ErasedWorkerError)
    async def erased(_: Request, error: ErasedWorkerError) -> JSONResponse:
        return refusal(409, str(error))

    def context(principal: Principal, key: str | None) -> CommandContext:
        return CommandContext(
            principal.subject, principal.role, correlation_id(), idempotency_key=key
        )

    @router.post("/workers", status_code=201, response_model=Registered)
    async def register(
        body: RegisterRequest,
        principal: Annotated[Principal, Depends(caller)],
        idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    ) -> Registered:
        """Register a worker of the officer's own kelurahan (idempotent per Idempotency-Key)."""
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
        key = f"api:{principal.subject}:{idempotency_key}" if idempotency_key else None
        try:
            worker_id, result = await service.register(registration, context(principal, key))
        except DuplicateNikError as error:
            raise error.seen_by(scope) from None
        return Registered(worker_id=worker_id, already_registered=result.duplicate)

    @router.post(
        "/imports",
        responses={
            413: {"description": f"Over {MAX_BYTES:,} bytes: split the file."},
            422: {"description": "Not UTF-8, not CSV, columns missing, or too many rows."},
        },
        openapi_extra={
            "requestBody": {
                "content": {"text/csv": {"schema": {"type": "string"}}},
                "required": True,
            }
        },
    )
    async def import_file(
        request: Request, principal: Annotated[Principal, Depends(caller)]
    ) -> dict[str, Any]:
        """Import a CSV list (UTF-8; columns nik, full_name, birth_date, sex, occupation_code,
        kelurahan_code, address, phone, heir_name, heir_relationship; at most 100,000 rows): a
        result per row."""
        require_role(principal, ["kelurahan_officer"])
        content = await body_within(
            request, MAX_BYTES, f"split the file (at most {MAX_ROWS:,} rows at once)"
        )
        try:
            result = await import_csv(service, content, principal.subject, AreaScope.of(principal))
        except ImportFileError as error:
            raise HTTPException(422, str(error)) from None
        return {
            "batch_id": result.batch_id,
            "registered": result.count("registered"),
            "already_registered": result.count("already_registered"),
            "refused": result.count("refused"),
            "report": f"/imports/{result.batch_id}/report.csv",
            "rows": [
                {
                    "row": r.row,
                    "outcome": r.outcome,
                    "worker_id": r.worker_id,
                    "reasons": list(r.reasons),
                }
                for r in result.rows
            ],
        }

    @router.get("/imports/{batch_id}/report.csv", response_class=PlainTextResponse)
    async def import_report(
        batch_id: Annotated[str, Field(pattern=r"^[0-9a-f]{16}$")],
        principal: Annotated[Principal, Depends(caller)],
    ) -> str:
        """The per-row outcome of an import, as CSV."""
        require_role(principal, ["kelurahan_officer", "kecamatan_officer", "city_admin", "auditor"])
        report = await report_csv(service, batch_id, AreaScope.of(principal))
        if report is None:
            raise HTTPException(404, f"no import {batch_id}")
        return report

    @router.post(
        "/workers/{worker_id}/corrections",
        status_code=201,
        responses={200: {"description": "Nothing differs from the worker's details: no event."}},
    )
    async def correct(
        worker_id: uuid.UUID,
        body: CorrectionRequest,
        principal: Annotated[Principal, Depends(caller)],
        response: Response,
    ) -> dict[str, Any]:
        """Correct a worker's details, with a reason; checked by the registration rules. Only
        what differs is a correction; a move must stay within the officer's area."""
        require_role(principal, ["kelurahan_officer"])
        scope = AreaScope.of(principal)
        correction = Correction(**body.model_dump())
        try:
            result, version = await service.correct(
                worker_id, correction, context(principal, None), scope
            )
        except DuplicateNikError as error:
            raise error.seen_by(scope) from None
        if result is None:
            response.status_code = 200
        return {"stream_version": version, "changed": result is not None}

    @router.post("/workers/{worker_id}/withdrawal", status_code=201)
    async def withdraw(
        worker_id: uuid.UUID,
        body: WithdrawalRequest,
        principal: Annotated[Principal, Depends(caller)],
    ) -> dict[str, int]:
        """End a worker's coverage on a date (city administrator)."""
        require_role(principal, ["city_admin"])
        command = EndCoverage(worker_id, "withdrawn", body.end_date, service.clock())
        result = await service.execute(command, context(principal, None))
        return {"stream_version": result.last_version if result else 0}

    async def _worker_row(worker_id: uuid.UUID | None, scope: AreaScope) -> Any:
        """The worker's row, or None if there is none in the caller's area."""
        within = scope.sql_filter(2, "kelurahan_code", "kecamatan_code")
        return await service.pool.fetchrow(
            f"SELECT * FROM {service.schema}.workers WHERE worker_id = $1 AND {within.condition}",
            worker_id,
            *within.args,
        )

    async def _view(row: Any, scope: AreaScope) -> WorkerView:
        if not scope.acts_on_people:
            return WorkerView(
                **{k: row[k] for k in WorkerView.model_fields if k not in PERSONAL_VIEW},
                **dict.fromkeys(PROFILE_FIELDS),
            )
        sealed = SealedPersonal.model_validate_json(row["personal"])
        personal = open_sealed(sealed, await service.keys.get(sealed.key_id), WorkerPersonal)
        return WorkerView(
            **{k: row[k] for k in WorkerView.model_fields if k != "personal"},
            personal=personal if isinstance(personal, WorkerPersonal) else None,
        )

    @router.get("/summary")
    async def summary(principal: Annotated[Principal, Depends(caller)]) -> dict[str, Any]:
        """Workers by status and cohort, in the caller's area."""
        within = AreaScope.of(principal).sql_filter(1, "kelurahan_code", "kecamatan_code")
        rows = await service.pool.fetch(
            f"SELECT status, coalesce(cohort, '-') AS cohort, count(*) AS workers "
            f"FROM {service.schema}.workers WHERE {within.condition} GROUP BY 1, 2 ORDER BY 1, 2",
            *within.args,
        )
        return {"workers": [dict(r) for r in rows]}

    @router.get("/workers/{worker_id}", response_model=WorkerView)
    async def get_worker(
        worker_id: uuid.UUID, principal: Annotated[Principal, Depends(caller)]
    ) -> WorkerView:
        """A worker of the caller's area; personal data and profile only for roles acting on
        the person."""
        scope = AreaScope.of(principal)
        row = await _worker_row(worker_id, scope)
        if row is None:  # or outside the caller's area: the same answer, so nothing is learnt
            raise HTTPException(404, f"no worker {worker_id}")
        return await _view(row, scope)

    @router.get("/workers", response_model=list[WorkerView])
    async def find_workers(
        principal: Annotated[Principal, Depends(caller)],
        nik: Annotated[str | None, Query(pattern=r"^[0-9]{16}$")] = None,
        kelurahan: Annotated[str | None, Query(pattern=r"^33\.75\.0[1-4]\.[0-9]{4}$")] = None,
        status: Annotated[Literal["registered", "covered", "ended"] | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[WorkerView]:
        """Workers of the caller's area by NIK (roles acting on the person), or by kelurahan
        and status."""
        scope = AreaScope.of(principal)
        if nik is not None:
            if not scope.acts_on_people:
                raise HTTPException(403, f"role {principal.role} may not look workers up by NIK")
            # Registered elsewhere answers as never registered: no probing beyond the area.
            row = await _worker_row(await service.worker_by_nik(nik), scope)
            rows = [row] if row else []
        else:
            if kelurahan is not None:
                scope.require(kelurahan, "list the workers")
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
        return [await _view(row, scope) for row in rows]

    @router.get("/workers/{worker_id}/coverage", response_model=CoverageView)
    async def coverage_on(
        worker_id: uuid.UUID, on: date, principal: Annotated[Principal, Depends(caller)]
    ) -> CoverageView:
        """Whether a worker of the caller's area was covered on a date, from their history."""
        worker, _ = await service.load(worker_id)
        if not worker.registered or not AreaScope.of(principal).allows(worker.kelurahan_code):
            raise HTTPException(404, f"no worker {worker_id}")
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

    app.include_router(router)
    return app
