"""Verification's HTTP API: decisions at each level, designation, worklists, decree annex.

No postponed annotations here: FastAPI reads the routes' annotations, which refer to the
authentication dependency built inside ``create_app``.
"""

import csv
import io
import uuid
from datetime import date
from typing import Annotated, Any, Literal, get_args

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from services.verification.domain import Designate, Reject, Verify
from services.verification.service import STAGE_SQL, UnknownWorkerError, VerificationService
from shared.auth import AuthSettings, Principal, Role, require_role
from shared.events.bounds import Note, Reference
from shared.events.verification import Level, RejectionReason
from shared.eventstore.store import CommandContext
from shared.http import FiscalYear, refusal, service_app
from shared.logs import correlation_id
from shared.scope import PROFILE_FIELDS, AreaScope, KecamatanCode

LEVEL_OF_ROLE: dict[Role, Level] = {
    "kelurahan_officer": "kelurahan",
    "kecamatan_officer": "kecamatan",
    "city_admin": "city",
}


class VerifyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: Note | None = None


class RejectRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reasons: list[RejectionReason] = Field(min_length=1, max_length=len(get_args(RejectionReason)))
    note: Note | None = None


class DesignateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cohort: Literal["regular", "incidental"]
    cover_months: int = Field(ge=1, le=12)
    coverage_start: date
    fiscal_year: FiscalYear
    decree_ref: Reference


class Decision(BaseModel):
    worker_id: uuid.UUID
    stream_version: int
    already_decided: bool


def create_app(service: VerificationService, auth: AuthSettings) -> FastAPI:
    app, router, caller = service_app(
        "verification",
        "Kelurahan verification, kecamatan validation and city designation.",
        auth,
    )

    @app.exception_handler(UnknownWorkerError)
    async def unknown(_: Request, error: UnknownWorkerError) -> JSONResponse:
        return refusal(404, str(error))

    async def level_and_area(principal: Principal, worker_id: uuid.UUID) -> Level:
        require_role(principal, list(LEVEL_OF_ROLE))
        facts = await service.facts(worker_id)
        AreaScope.of(principal).require(facts.kelurahan_code, "decide a case")
        return LEVEL_OF_ROLE[principal.role]

    async def run(command: Verify | Reject | Designate, principal: Principal) -> Decision:
        context = CommandContext(principal.subject, principal.role, correlation_id())
        result = await service.execute(command, context)
        return Decision(
            worker_id=command.worker_id,
            stream_version=result.last_version,
            already_decided=result.duplicate,
        )

    @router.post("/cases/{worker_id}/verify", response_model=Decision)
    async def verify(
        worker_id: uuid.UUID, body: VerifyRequest, principal: Annotated[Principal, Depends(caller)]
    ) -> Decision:
        """Pass the case at the caller's level (kelurahan or kecamatan officer of its area)."""
        level = await level_and_area(principal, worker_id)
        if level == "city":
            raise HTTPException(409, "the city level is a designation: POST .../designate")
        return await run(Verify(worker_id, level, service.clock(), body.note), principal)

    @router.post("/cases/{worker_id}/reject", response_model=Decision)
    async def reject(
        worker_id: uuid.UUID, body: RejectRequest, principal: Annotated[Principal, Depends(caller)]
    ) -> Decision:
        """Reject the case at the caller's level, with reason codes."""
        level = await level_and_area(principal, worker_id)
        command = Reject(worker_id, level, tuple(body.reasons), service.clock(), body.note)
        return await run(command, principal)

    @router.post("/cases/{worker_id}/designate", response_model=Decision)
    async def designate(
        worker_id: uuid.UUID,
        body: DesignateRequest,
        principal: Annotated[Principal, Depends(caller)],
    ) -> Decision:
        """Designate the worker into a cohort (city administrator), within quota and budget."""
        require_role(principal, ["city_admin"])
        command = Designate(
            worker_id,
            body.cohort,
            body.cover_months,
            body.coverage_start,
            body.fiscal_year,
            body.decree_ref,
            service.clock(),
        )
        return await run(command, principal)

    @router.get("/cases/{worker_id}")
    async def case(
        worker_id: uuid.UUID, principal: Annotated[Principal, Depends(caller)]
    ) -> dict[str, Any]:
        """A case of the caller's area: its stage and its last decision."""
        scope = AreaScope.of(principal)
        within = scope.sql_filter(2, "kelurahan_code", "kecamatan_code")
        row = await service.pool.fetchrow(
            f"SELECT *, {STAGE_SQL} AS stage FROM {service.schema}.cases "
            f"WHERE worker_id = $1 AND {within.condition}",
            worker_id,
            *within.args,
        )
        if row is None:  # or outside the caller's area: the same answer, so nothing is learnt
            raise HTTPException(404, f"no case for worker {worker_id}")
        case = dict(row)
        return case if scope.acts_on_people else case | dict.fromkeys(PROFILE_FIELDS & case.keys())

    @router.get("/worklists/{level}/{area}")
    async def worklist(
        level: Literal["kelurahan", "kecamatan"],
        area: Annotated[str, Field(pattern=r"^33\.75\.0[1-4](\.[0-9]{4})?$")],
        principal: Annotated[Principal, Depends(caller)],
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        """Cases waiting at a level in an area (a kelurahan or a kecamatan code) within the
        caller's, oldest first, with the count."""
        require_role(principal, ["kelurahan_officer", "kecamatan_officer", "city_admin", "auditor"])
        scope = AreaScope.of(principal)
        if not scope.covers(area):
            raise HTTPException(
                403, f"{principal.role} may not see the worklist of {area}: outside {scope.area}"
            )
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
            f"SELECT count(*) FROM {service.schema}.cases WHERE {where}",
            area,
            level,
            *within.args,
        )
        return {"level": level, "area": area, "pending": count, "cases": [dict(r) for r in rows]}

    @router.get("/designations", response_model=None)
    async def designations(
        fiscal_year: FiscalYear,
        cohort: Literal["regular", "incidental"],
        principal: Annotated[Principal, Depends(caller)],
        format: Literal["json", "csv"] = "json",
    ) -> Any:
        """The designation list of a cohort and fiscal year (the decree annex)."""
        require_role(principal, ["city_admin", "billing_officer", "auditor"])
        rows = await service.pool.fetch(
            f"SELECT d.worker_id, c.kelurahan_code, c.kecamatan_code, d.cover_months, "
            f"d.coverage_start, d.decree_ref, d.designated_at FROM {service.schema}.designations d "
            f"JOIN {service.schema}.cases c USING (worker_id) "
            "WHERE d.fiscal_year = $1 AND d.cohort = $2 ORDER BY c.kelurahan_code, d.designated_at",
            fiscal_year,
            cohort,
        )
        if format == "json":
            return {
                "fiscal_year": fiscal_year,
                "cohort": cohort,
                "count": len(rows),
                "workers": [dict(r) for r in rows],
            }
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
        for number, r in enumerate(rows, start=1):
            writer.writerow(
                [
                    number,
                    r["worker_id"],
                    r["kelurahan_code"],
                    r["kecamatan_code"],
                    r["cover_months"],
                    r["coverage_start"],
                    r["decree_ref"],
                ]
            )
        return PlainTextResponse(out.getvalue(), media_type="text/csv")

    app.include_router(router)
    return app
