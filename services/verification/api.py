"""Verification's HTTP API: decisions at each level, designation, worklists, decree annex.

Routes authenticate, validate and hand over: commands to ``services.verification.service``,
reads to ``services.verification.queries``.
"""

import uuid
from datetime import date
from typing import Annotated, Any, Literal, get_args

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from contract.api import contract_router
from contract.events.verification import Level, RejectionReason
from contract.policy.freetext import CLEAR_TEXT
from services.verification import queries
from services.verification.domain import Designate, Reject, Verify
from services.verification.queries import CaseView, DesignationCounters, Designations, Worklist
from services.verification.service import UnknownWorkerError, VerificationService
from shared.auth import AuthSettings, Principal, Role, require_role
from shared.bounds import Note, Reference
from shared.decisions import RefusedError
from shared.eventstore.handler import Handled
from shared.eventstore.store import CommandContext
from shared.http import (
    FiscalYear,
    Idempotency,
    caller,
    idempotent,
    refusal,
    service_app,
    service_router,
)
from shared.logs import correlation_id
from shared.scope import AreaScope, OutsideAreaError

# A bulk designation's list, bounded so that its one transaction stays short.
MAX_DESIGNATIONS = 5000

LEVEL_OF_ROLE: dict[Role, Level] = {
    "kelurahan_officer": "kelurahan",
    "kecamatan_officer": "kecamatan",
    "city_admin": "city",
}


class VerifyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: Annotated[Note, CLEAR_TEXT] | None = None


class RejectRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reasons: list[RejectionReason] = Field(min_length=1, max_length=len(get_args(RejectionReason)))
    note: Annotated[Note, CLEAR_TEXT] | None = None


class DesignateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cohort: Literal["regular", "incidental"]
    cover_months: int = Field(ge=1, le=12)
    coverage_start: date
    fiscal_year: FiscalYear
    decree_ref: Reference


class DesignateManyRequest(DesignateRequest):
    worker_ids: list[uuid.UUID] = Field(min_length=1, max_length=MAX_DESIGNATIONS)


class Decision(BaseModel):
    worker_id: uuid.UUID
    stream_version: int
    already_decided: bool


class Problem(BaseModel):
    field: str
    message: str


class DesignationOutcome(BaseModel):
    """One worker of a bulk designation: designated (its case's version, and whether an
    earlier request under the same key did it) or refused (the status and reasons a single
    designation of that worker would have been answered with)."""

    worker_id: uuid.UUID
    designated: bool
    stream_version: int | None = None
    already_decided: bool = False
    status: int | None = None
    detail: str | None = None
    problems: list[Problem] = []


class DesignationOutcomes(BaseModel):
    designated: int
    refused: int
    outcomes: list[DesignationOutcome]


def verification(request: Request) -> VerificationService:
    service: VerificationService = request.app.state.service
    return service


Caller = Annotated[Principal, Depends(caller)]
Verification = Annotated[VerificationService, Depends(verification)]
router = service_router()


async def level_and_area(
    service: VerificationService, principal: Principal, worker_id: uuid.UUID
) -> Level:
    require_role(principal, list(LEVEL_OF_ROLE))
    facts = await service.facts(worker_id)
    AreaScope.of(principal).hide_outside(
        facts.kelurahan_code, UnknownWorkerError.no_case(worker_id)
    )
    return LEVEL_OF_ROLE[principal.role]


def command_context(
    principal: Principal, key: Idempotency | None, item: str = ""
) -> CommandContext:
    """The context of a command under the request's key; ``item`` names one command of a
    bulk request, under a key of its own derived from the request's."""
    return CommandContext(
        principal.subject,
        principal.role,
        correlation_id(),
        idempotency_key=f"{key.key}{item}" if key else None,
        fingerprint=key.fingerprint if key else None,
    )


def decision(handled: Handled) -> Decision:
    return Decision.model_validate(handled.response).model_copy(
        update={"already_decided": handled.replayed}
    )


async def run(
    service: VerificationService,
    command: Verify | Reject,
    principal: Principal,
    key: Idempotency | None,
) -> Decision:
    return decision(await service.execute(command, command_context(principal, key)))


@router.post("/cases/{worker_id}/verify")
async def verify(
    worker_id: uuid.UUID,
    body: VerifyRequest,
    principal: Caller,
    service: Verification,
    key: Annotated[Idempotency | None, Depends(idempotent("verify", required=False))],
) -> Decision:
    """Pass the case at the caller's level (kelurahan or kecamatan officer of its area)."""
    level = await level_and_area(service, principal, worker_id)
    if level == "city":
        raise HTTPException(409, "the city level is a designation: POST .../designate")
    return await run(service, Verify(worker_id, level, service.clock(), body.note), principal, key)


@router.post("/cases/{worker_id}/reject")
async def reject(
    worker_id: uuid.UUID,
    body: RejectRequest,
    principal: Caller,
    service: Verification,
    key: Annotated[Idempotency | None, Depends(idempotent("reject", required=False))],
) -> Decision:
    """Reject the case at the caller's level, with reason codes."""
    level = await level_and_area(service, principal, worker_id)
    command = Reject(worker_id, level, tuple(body.reasons), service.clock(), body.note)
    return await run(service, command, principal, key)


def designations_of(
    worker_ids: list[uuid.UUID], body: DesignateRequest, service: VerificationService
) -> list[Designate]:
    at = service.clock()
    return [
        Designate(
            worker_id,
            body.cohort,
            body.cover_months,
            body.coverage_start,
            body.fiscal_year,
            body.decree_ref,
            at,
        )
        for worker_id in worker_ids
    ]


@router.post("/cases/{worker_id}/designate")
async def designate(
    worker_id: uuid.UUID,
    body: DesignateRequest,
    principal: Caller,
    service: Verification,
    key: Annotated[Idempotency | None, Depends(idempotent("designate", required=False))],
) -> Decision:
    """Designate the worker into a cohort (city administrator), within quota and budget."""
    require_role(principal, ["city_admin"])
    (command,) = designations_of([worker_id], body, service)
    context = command_context(principal, key)
    answered = await service.designate(
        [(command, context)], AreaScope.of(principal), lambda outcomes: outcomes[0]
    )
    outcome = answered.response
    if isinstance(outcome, Exception):
        raise outcome
    return decision(outcome)


@router.post("/cases/designate")
async def designate_many(
    body: DesignateManyRequest,
    principal: Caller,
    service: Verification,
    key: Annotated[Idempotency | None, Depends(idempotent("designate-many", required=False))],
) -> DesignationOutcomes:
    """Designate a list of workers into a cohort (city administrator) in one transaction, in
    the list's order, each within the quota and budget those before it left: a worker
    refused (unknown, outside the caller's area, not at the city step, not eligible, beyond
    the quota or the budget) is refused alone, with its reasons, and the others are
    designated. A retry under the same key gets the first answer again, whatever changed
    since, and designates no one more (those refused stay refused: send them again under a
    new key); the key with another list is refused (422)."""
    require_role(principal, ["city_admin"])
    commands = designations_of(body.worker_ids, body, service)

    def answer(outcomes: list[Handled | Exception]) -> dict[str, Any]:
        listed = [
            outcome_of(command.worker_id, outcome)
            for command, outcome in zip(commands, outcomes, strict=True)
        ]
        designated = sum(outcome.designated for outcome in listed)
        whole = DesignationOutcomes(
            designated=designated, refused=len(listed) - designated, outcomes=listed
        )
        return whole.model_dump(mode="json")

    answered = await service.designate(
        [
            (command, command_context(principal, key, f":{index}"))
            for index, command in enumerate(commands)
        ],
        AreaScope.of(principal),
        answer,
        key=key.key if key else None,
        fingerprint=key.fingerprint if key else None,
    )
    recorded = DesignationOutcomes.model_validate(answered.response)
    if not answered.replayed:
        return recorded
    # The first answer, each worker designated then marked as done by that earlier request.
    return recorded.model_copy(
        update={
            "outcomes": [
                o.model_copy(update={"already_decided": o.designated}) for o in recorded.outcomes
            ]
        }
    )


def outcome_of(worker_id: uuid.UUID, outcome: Handled | Exception) -> DesignationOutcome:
    if not isinstance(outcome, Exception):
        found = decision(outcome)
        return DesignationOutcome(
            worker_id=worker_id,
            designated=True,
            stream_version=found.stream_version,
            already_decided=found.already_decided,
        )
    refused = DesignationOutcome(worker_id=worker_id, designated=False, detail=str(outcome))
    if isinstance(outcome, RefusedError):
        return refused.model_copy(
            update={
                "status": 409 if outcome.conflict else 422,
                "problems": [Problem(field=p.field, message=p.message) for p in outcome.problems],
            }
        )
    status = {UnknownWorkerError: 404, OutsideAreaError: 403}.get(type(outcome), 422)
    return refused.model_copy(update={"status": status})


@router.get("/cases/{worker_id}")
async def case(worker_id: uuid.UUID, principal: Caller, service: Verification) -> CaseView:
    """A case of the caller's area: its stage and its last decision."""
    found = await queries.case(service, worker_id, AreaScope.of(principal))
    if found is None:  # or outside the caller's area: the same answer, so nothing is learnt
        raise HTTPException(404, f"no case for worker {worker_id}")
    return found


@router.get("/worklists/{level}/{area}")
async def worklist(
    level: Level,
    area: Annotated[str, Field(pattern=r"^33\.75(\.0[1-4](\.[0-9]{4})?)?$")],
    principal: Caller,
    service: Verification,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=queries.MAX_WORKLIST_OFFSET)] = 0,
) -> Worklist:
    """Cases waiting at a level (``city``: ready for designation) in an area (a kelurahan or a
    kecamatan code, or ``33.75``, the whole city) within the caller's, oldest first, a page of
    ``limit`` from ``offset``, with the count of all."""
    require_role(principal, ["kelurahan_officer", "kecamatan_officer", "city_admin", "auditor"])
    scope = AreaScope.of(principal)
    if not scope.covers(area):
        raise HTTPException(
            403, f"{principal.role} may not see the worklist of {area}: outside {scope.area}"
        )
    return await queries.worklist(service, level, area, limit, offset, scope)


@router.get(
    "/designations",
    response_model=Designations,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
async def designations(
    fiscal_year: FiscalYear,
    cohort: Literal["regular", "incidental"],
    principal: Caller,
    service: Verification,
    format: Literal["json", "csv"] = "json",
) -> Designations | PlainTextResponse:
    """The designation list of a cohort and fiscal year (the decree annex; CSV on request)."""
    require_role(principal, ["city_admin", "billing_officer", "auditor"])
    listed = await queries.designations(service, fiscal_year, cohort)
    if format == "json":
        return listed
    return PlainTextResponse(queries.decree_annex(listed), media_type="text/csv")


@router.get("/designations/{fiscal_year}/counters")
async def designation_counters(
    fiscal_year: FiscalYear, principal: Caller, service: Verification
) -> DesignationCounters:
    """Per cohort: designated of the quota and budget committed of allocated, as the next
    designation of the year is decided against them."""
    require_role(principal, ["city_admin", "billing_officer", "auditor"])
    return await queries.counters(service, fiscal_year)


def create_app(service: VerificationService, auth: AuthSettings) -> FastAPI:
    app = service_app(
        "verification",
        "Kelurahan verification, kecamatan validation and city designation.",
        auth,
        router,
        service,
        published=[contract_router()],
    )

    @app.exception_handler(UnknownWorkerError)
    async def unknown(_: Request, error: UnknownWorkerError) -> JSONResponse:
        return refusal(404, str(error))

    return app
