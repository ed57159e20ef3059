"""``berlian audit web``: the auditor's application as a JSON API. A worker's history, the
programme as true on a day, a fiscal year's report, the topics' hash chains checked, and the
topics' positions, projection lag and dead letters, each a typed answer.

Callers send the bearer tokens the services accept (for the audit audience), as the auditor or
the city administrator; a revoked token is refused at its next request. The officers' console
draws the auditor's pages from these answers with the signed-in user's token
(``services/console/audit_pages.py``). The application reads the topics, rebuilds into scratch
schemas of its own login (``berlian_audit_web``), and reads the services' projection positions
and waiting dead letters: nothing else. Personal data stays sealed in every answer.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Annotated, Literal

import asyncpg
from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from services.audit.asof import Figure, Moment, State, rebuild
from services.audit.history import HistoryEntry, WorkerRecords
from services.audit.report import report_figures
from shared.audit.verify import VerifyReport, verify_topics
from shared.auth import (
    AUDIT_AUDIENCE,
    AuthSettings,
    Principal,
    Role,
    authenticated,
    require_role,
    verifier_for,
)
from shared.business_calendar import business_day
from shared.http import PROBLEM_RESPONSES, caller, install_error_handlers, install_request_limits
from shared.privileges import AUDIT_WEB_LABEL
from shared.revocation import RevocationList
from shared.scope import PROFILE_FIELDS, AreaScope
from shared.settings import SERVICES, KafkaSettings
from shared.topic_reader import end_offsets

ALLOWED_ROLES: tuple[Role, ...] = ("auditor", "city_admin")
# A report or a check of the chains asked for again within this is answered from the last one
# (each reads every topic); the answer says when it was made.
FRESH_SECONDS = 300.0
# The days whose rebuilt state is kept (each a few figures), the one made longest ago dropped
# first; a late event can still change a past day, so none is kept longer than FRESH_SECONDS.
MAX_DAYS_KEPT = 31
# The most findings one answer lists (their number is given in full).
MAX_FINDINGS = 1000
Cell = str | int | float | None


class Standing(BaseModel):
    status: Literal["ACTIVE", "GRACE", "INACTIVE", "NOT_COVERED"]
    arrears: list[str] = Field(description="Months invoiced and unpaid, as YYYY-MM.")


class HistoryEvent(BaseModel):
    topic: str
    partition: int
    offset: int
    recorded_at: datetime
    occurred_at: datetime
    event_type: str = Field(examples=["PremiumPaid"])
    actor_role: str
    actor_id: str
    policy_version: str | None
    details: dict[str, object] = Field(
        description="The event's data; personal data sealed, profile fields only for a role "
        "that acts on people."
    )
    on: date = Field(description="The business day the event is about.")
    standing: Standing = Field(description="The worker's coverage standing after the event.")


class WorkerHistory(BaseModel):
    worker_id: uuid.UUID
    total: int = Field(description="Events about the worker in all.")
    offset: int
    events: list[HistoryEvent]


class TopicOffset(BaseModel):
    topic: str
    partition: int
    end_offset: int


class FigureAnswer(BaseModel):
    question: str
    query: str = Field(description="The SQL that produced it, on the rebuild's schemas.")
    columns: list[str]
    rows: list[list[Cell]]


class ProgrammeState(BaseModel):
    true_on: date
    offsets: list[TopicOffset] = Field(description="How far each partition was read.")
    figures: list[FigureAnswer]


class ProgrammeReport(BaseModel):
    fiscal_year: int
    known_at: datetime
    offsets: list[TopicOffset]
    figures: list[FigureAnswer]
    loss_ratio: float | None


class TopicCheck(BaseModel):
    topic: str
    events: int
    duplicates: int
    findings: dict[str, int]


class ChainFinding(BaseModel):
    kind: str
    topic: str
    partition: int
    offset: int
    stream_id: str | None
    stream_version: int | None
    detail: str


class ChainCheck(BaseModel):
    ok: bool
    checked_at: datetime
    events: int
    topics: list[TopicCheck]
    findings_total: int
    findings: list[ChainFinding] = Field(description=f"The first {MAX_FINDINGS}, in log order.")


class ProjectionLag(BaseModel):
    service: str
    projection: str
    topic: str
    partition: int
    next_offset: int
    lag: int


class WaitingLetters(BaseModel):
    service: str
    consumer: str
    reason: str
    records: int


class Operations(BaseModel):
    topics: list[TopicOffset]
    projections: list[ProjectionLag]
    dead_letters: list[WaitingLetters]


@dataclass
class Reader:
    """What the answers are read from, and the rebuilds already made: one at a time, as they
    share their scratch schemas."""

    pool: asyncpg.Pool
    kafka: KafkaSettings
    states: dict[date, tuple[float, State]] = field(default_factory=dict)
    reports: dict[int, tuple[float, ProgrammeReport]] = field(default_factory=dict)
    checked: tuple[float, ChainCheck] | None = None
    rebuilding: asyncio.Lock = field(default_factory=asyncio.Lock)
    workers: WorkerRecords = field(init=False)

    def __post_init__(self) -> None:
        self.workers = WorkerRecords(self.kafka)


def auditor(principal: Annotated[Principal, Depends(caller)]) -> Principal:
    require_role(principal, ALLOWED_ROLES)
    return principal


def reader(request: Request) -> Reader:
    found: Reader = request.app.state.reader
    return found


Auditor = Annotated[Principal, Depends(auditor)]
Read = Annotated[Reader, Depends(reader)]
router = APIRouter(responses=PROBLEM_RESPONSES)


@router.get("/workers/{worker_id}/history")
async def history(
    worker_id: uuid.UUID,
    principal: Auditor,
    read: Read,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> WorkerHistory:
    """Every event about the worker across the four topics, in the order they were recorded,
    with the worker's standing after each (an empty list for a worker no event names)."""
    entries = await read.workers.history(worker_id)
    profile = AreaScope.of(principal).acts_on_people
    return WorkerHistory(
        worker_id=worker_id,
        total=len(entries),
        offset=offset,
        events=[_event(e, profile) for e in entries[offset : offset + limit]],
    )


def _event(entry: HistoryEntry, profile: bool) -> HistoryEvent:
    role, _, actor_id = entry.actor.partition(":")
    return HistoryEvent(
        topic=entry.topic,
        partition=entry.partition,
        offset=entry.offset,
        recorded_at=entry.recorded_at,
        occurred_at=entry.occurred_at,
        event_type=entry.event_type,
        actor_role=role,
        actor_id=actor_id,
        policy_version=entry.policy_version,
        details={k: v for k, v in entry.details.items() if profile or k not in PROFILE_FIELDS},
        on=entry.on,
        standing=Standing(status=entry.standing.status, arrears=list(entry.standing.arrears)),
    )


@router.get("/programme")
async def programme(
    principal: Auditor,
    read: Read,
    on: Annotated[date | None, Query(description="As true on this day (today in Jakarta).")] = None,
) -> ProgrammeState:
    """Workers by status and cohort, premiums due and paid, claims open and decided, rebuilt
    from the topics as true on a day (or at most five minutes ago, as the same day was asked)."""
    day = on or business_day(datetime.now(UTC))
    async with read.rebuilding:
        made = read.states.get(day)
        if made is None or time.monotonic() - made[0] > FRESH_SECONDS:
            state = await rebuild(read.pool, read.kafka, AUDIT_WEB_LABEL, Moment(true_on=day))
            read.states.pop(day, None)
            while len(read.states) >= MAX_DAYS_KEPT:
                del read.states[next(iter(read.states))]  # the one made longest ago
            made = read.states[day] = (time.monotonic(), state)
        state = made[1]
    return ProgrammeState(
        true_on=day, offsets=_offsets(state), figures=_figures(state.figures.values())
    )


@router.get("/reports/{fiscal_year}")
async def report(
    fiscal_year: Annotated[int, Path(ge=2022, le=2100)], principal: Auditor, read: Read
) -> ProgrammeReport:
    """The fiscal year in figures, as known now (or at most five minutes ago, as said): covered
    workers per month by cohort, premiums against the budget, claims, the loss ratio."""
    async with read.rebuilding:
        made = read.reports.get(fiscal_year)
        if made is None or time.monotonic() - made[0] > FRESH_SECONDS:
            known_at = datetime.now(UTC)
            state, figures, ratio = await report_figures(
                read.pool, read.kafka, fiscal_year, AUDIT_WEB_LABEL, known_at
            )
            answer = ProgrammeReport(
                fiscal_year=fiscal_year,
                known_at=known_at,
                offsets=_offsets(state),
                figures=_figures(figures.values()),
                loss_ratio=ratio,
            )
            made = read.reports[fiscal_year] = (time.monotonic(), answer)
    return made[1]


@router.get("/verification")
async def verification(principal: Auditor, read: Read) -> ChainCheck:
    """The hash chains of the four event topics recomputed (as ``audit verify --topics-only``;
    the stores and signed checkpoints need the administrative login)."""
    async with read.rebuilding:
        if read.checked is None or time.monotonic() - read.checked[0] > FRESH_SECONDS:
            topics = [read.kafka.events_topic(s) for s in SERVICES]
            checked_at = datetime.now(UTC)
            found = await verify_topics(read.kafka, topics, workers=1)
            read.checked = (time.monotonic(), _chain_check(found, checked_at))
    return read.checked[1]


def _chain_check(report: VerifyReport, checked_at: datetime) -> ChainCheck:
    return ChainCheck(
        ok=report.ok,
        checked_at=checked_at,
        events=report.events,
        topics=[
            TopicCheck(
                topic=t.topic, events=t.events, duplicates=t.duplicates, findings=dict(t.findings)
            )
            for t in report.topics
        ],
        findings_total=len(report.findings),
        findings=[
            ChainFinding(
                kind=f.kind,
                topic=f.location.topic,
                partition=f.location.partition,
                offset=f.location.offset,
                stream_id=f.stream_id,
                stream_version=f.stream_version,
                detail=f.detail,
            )
            for f in report.findings[:MAX_FINDINGS]
        ],
    )


@router.get("/operations")
async def operations(principal: Auditor, read: Read) -> Operations:
    """Each partition's end offset, each projection's position and lag, and the dead letters
    not yet re-driven, by service, consumer and reason."""
    ends = await end_offsets(read.kafka, [read.kafka.events_topic(s) for s in SERVICES])
    by_partition = {(tp.topic, tp.partition): end for tp, end in ends.items()}
    lag, letters = [], []
    for service in SERVICES:
        for row in await read.pool.fetch(
            f"SELECT projection, topic, partition, next_offset FROM {service}."
            "projection_positions ORDER BY 1, 2, 3"
        ):
            end = by_partition.get((row["topic"], row["partition"]), row["next_offset"])
            lag.append(ProjectionLag(service=service, **row, lag=max(0, end - row["next_offset"])))
        for row in await read.pool.fetch(
            f"SELECT consumer, left(reason, 200) AS reason, count(*) AS records FROM {service}."
            "dead_letters WHERE resolved_at IS NULL GROUP BY 1, 2 ORDER BY 1, 2"
        ):
            letters.append(WaitingLetters(service=service, **row))
    topics = [
        TopicOffset(topic=tp.topic, partition=tp.partition, end_offset=end)
        for tp, end in sorted(ends.items())
    ]
    return Operations(topics=topics, projections=lag, dead_letters=letters)


def _offsets(state: State) -> list[TopicOffset]:
    found = []
    for where, end in state.offsets.items():
        topic, _, partition = where.rpartition("/")
        found.append(TopicOffset(topic=topic, partition=int(partition), end_offset=end))
    return found


def _figures(figures: Iterable[Figure]) -> list[FigureAnswer]:
    return [
        FigureAnswer(question=f.question, query=f.query, columns=f.columns, rows=f.rows)
        for f in figures
    ]


def create_app(pool: asyncpg.Pool, kafka: KafkaSettings, auth: AuthSettings) -> FastAPI:
    app = FastAPI(
        title="Berlian audit",
        version="1",
        description="The auditor's answers, rebuilt from the event topics; read-only.",
    )
    install_request_limits(app)
    install_error_handlers(app)
    app.state.authenticate = authenticated(verifier_for(auth, AUDIT_AUDIENCE))
    app.state.revocations = RevocationList(pool)
    app.state.reader = Reader(pool, kafka)
    app.include_router(router)

    @app.get("/health/live", include_in_schema=False)
    async def live() -> JSONResponse:
        return JSONResponse({"alive": True})

    @app.get("/health/ready", include_in_schema=False)
    async def ready() -> JSONResponse:
        try:
            await pool.fetchval("SELECT 1")
        except (OSError, asyncpg.PostgresError) as error:
            return JSONResponse({"ready": False, "problems": [f"postgresql: {error}"]}, 503)
        return JSONResponse({"ready": True, "problems": []})

    return app
