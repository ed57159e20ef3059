"""Enrolment's decisions: ``decide(command, state) -> events`` and ``evolve(state, event)``.

Pure functions: no I/O, no clock, no randomness. The caller passes the time of the command, the
identifiers and membership number it allocated, and personal data already sealed.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Literal, TypeVar
from uuid import UUID

from pydantic import BaseModel

from contract.events.enrolment import (
    CoverageEnded,
    CoverageStarted,
    RegistrationSource,
    WorkerDetailsCorrected,
    WorkerRegistered,
)
from contract.events.types import Premium
from contract.policy import PolicyBook
from contract.policy.eligibility import check_age, coverage_age_limit_end
from services.enrolment.rules import check_kelurahan, check_nik, check_occupation
from shared.business_calendar import business_day
from shared.decisions import Decided, Problem, Recorded, RefusedError
from shared.sealing import SealedPersonal

T = TypeVar("T")


@dataclass(frozen=True)
class RegisterWorker:
    worker_id: UUID
    nik: str
    personal: SealedPersonal
    birth_date: date
    sex: str
    occupation_code: str
    kelurahan_code: str
    source: RegistrationSource
    at: datetime


@dataclass(frozen=True)
class CorrectDetails:
    worker_id: UUID
    reason: str
    nik: str  # the NIK after the correction, to re-check it against birth date and sex
    at: datetime
    personal: SealedPersonal | None = None
    birth_date: date | None = None
    sex: str | None = None
    occupation_code: str | None = None
    kelurahan_code: str | None = None


@dataclass(frozen=True)
class StartCoverage:
    worker_id: UUID
    coverage_id: UUID
    membership_no: str
    cohort: str
    fiscal_year: int
    cover_months: int
    start_date: date
    decree_ref: str
    at: datetime


@dataclass(frozen=True)
class EndCoverage:
    worker_id: UUID
    reason: Literal["expired", "deceased", "age_limit", "withdrawn"]
    end_date: date
    at: datetime


Command = RegisterWorker | CorrectDetails | StartCoverage | EndCoverage


@dataclass(frozen=True)
class Coverage:
    coverage_id: UUID
    start_date: date
    end_date: date
    ended_on: date | None = None


@dataclass(frozen=True)
class Worker:
    """A worker as enrolment knows them, folded from their stream."""

    registered: bool = False
    personal: SealedPersonal | None = None  # the latest sealed details
    birth_date: date | None = None
    sex: str | None = None
    occupation_code: str | None = None
    kelurahan_code: str | None = None
    coverages: tuple[Coverage, ...] = field(default_factory=tuple)
    deceased: bool = False
    membership_no: str | None = None  # kept across renewals

    def coverage_on(self, day: date) -> Coverage | None:
        for coverage in self.coverages:
            last = coverage.ended_on or coverage.end_date
            if coverage.start_date <= day <= last:
                return coverage
        return None


def add_months(start: date, months: int) -> date:
    """The last day of a period of ``months`` months beginning on ``start``."""
    month_index = start.month - 1 + months
    year, month = start.year + month_index // 12, month_index % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return date.fromordinal(date(year, month, day).toordinal() - 1)


def decide(command: Command, worker: Worker, book: PolicyBook) -> list[Decided]:
    if isinstance(command, RegisterWorker):
        return _register(command, worker, book)
    if isinstance(command, CorrectDetails):
        return _correct(command, worker, book)
    if isinstance(command, StartCoverage):
        return _start_coverage(command, worker, book)
    return _end_coverage(command, worker, book)


def _register(command: RegisterWorker, worker: Worker, book: PolicyBook) -> list[Decided]:
    if worker.registered:
        raise RefusedError(
            [Problem("worker_id", "this worker is already registered")], conflict=True
        )
    day = business_day(command.at)
    policy = book.in_force(day)
    problems = [
        *check_nik(command.nik, command.birth_date, command.sex),
        *check_age(command.birth_date, day, policy),
        *check_occupation(command.occupation_code, policy),
        *check_kelurahan(command.kelurahan_code, book),
    ]
    if problems:
        raise RefusedError(problems)
    kelurahan = book.kelurahan[command.kelurahan_code]
    event = WorkerRegistered(
        worker_id=command.worker_id,
        personal=command.personal,
        birth_date=command.birth_date,
        sex="F" if command.sex == "F" else "M",
        occupation_code=command.occupation_code,
        kelurahan_code=command.kelurahan_code,
        kecamatan_code=kelurahan.kecamatan_code,
        insured_income=policy.insured_income,
        source=command.source,
    )
    return [Decided("WorkerRegistered", event, command.at, policy.version, schema_version=2)]


def _correct(command: CorrectDetails, worker: Worker, book: PolicyBook) -> list[Decided]:
    if not worker.registered:
        raise RefusedError([Problem("worker_id", "no such worker")], conflict=True)
    assert worker.birth_date is not None
    assert worker.sex is not None
    day = business_day(command.at)
    policy = book.in_force(day)
    birth_date = command.birth_date or worker.birth_date
    sex = command.sex or worker.sex
    problems = [*check_nik(command.nik, birth_date, sex)]
    # Only what differs from the worker's details is a correction.
    new_birth_date = _changed(command.birth_date, worker.birth_date)
    new_sex = _changed(command.sex, worker.sex)
    new_occupation = _changed(command.occupation_code, worker.occupation_code)
    new_kelurahan = _changed(command.kelurahan_code, worker.kelurahan_code)
    if new_birth_date is not None:
        problems += check_age(birth_date, day, policy)
    if new_occupation is not None:
        problems += check_occupation(new_occupation, policy)
    if new_kelurahan is not None:
        problems += check_kelurahan(new_kelurahan, book)
    if len(command.reason.strip()) < 3:
        problems.append(Problem("reason", "say why the details are corrected"))
    if problems:
        raise RefusedError(problems)
    if command.personal is None and not any(
        (new_birth_date, new_sex, new_occupation, new_kelurahan)
    ):
        return []  # nothing differs: no event, and nothing (a rejected case) reopens
    kecamatan = book.kelurahan[new_kelurahan].kecamatan_code if new_kelurahan else None
    event = WorkerDetailsCorrected(
        worker_id=command.worker_id,
        reason=command.reason.strip(),
        personal=command.personal,
        birth_date=new_birth_date,
        sex="F" if new_sex == "F" else ("M" if new_sex else None),
        occupation_code=new_occupation,
        kelurahan_code=new_kelurahan,
        kecamatan_code=kecamatan,
    )
    return [Decided("WorkerDetailsCorrected", event, command.at, policy.version)]


def _changed(requested: T | None, current: T | None) -> T | None:
    return requested if requested is not None and requested != current else None


def _start_coverage(command: StartCoverage, worker: Worker, book: PolicyBook) -> list[Decided]:
    if not worker.registered or worker.birth_date is None:
        raise RefusedError([Problem("worker_id", "no such worker")], conflict=True)
    if worker.deceased:
        raise RefusedError([Problem("worker_id", "the worker has died")], conflict=True)
    policy = book.in_force(command.start_date)
    end = add_months(command.start_date, command.cover_months)
    age_limit_end = coverage_age_limit_end(worker.birth_date, policy.coverage_age_limit)
    end = min(end, age_limit_end)
    if end < command.start_date:
        raise RefusedError([Problem("start_date", "the worker is past the coverage age limit")])
    for coverage in worker.coverages:
        last = coverage.ended_on or coverage.end_date
        if coverage.start_date <= end and command.start_date <= last:
            raise RefusedError(
                [
                    Problem(
                        "start_date",
                        f"overlaps coverage {coverage.start_date} to {last}; a renewal starts "
                        "after the current coverage ends",
                    )
                ],
                conflict=True,
            )
    premium = policy.monthly_premium
    event = CoverageStarted(
        worker_id=command.worker_id,
        coverage_id=command.coverage_id,
        membership_no=command.membership_no,
        cohort="regular" if command.cohort == "regular" else "incidental",
        fiscal_year=command.fiscal_year,
        programmes=["JKK", "JKM"],
        start_date=command.start_date,
        end_date=end,
        monthly_premium=Premium(total=premium.total, jkk=premium.jkk, jkm=premium.jkm),
        insured_income=policy.insured_income,
        decree_ref=command.decree_ref,
    )
    return [Decided("CoverageStarted", event, command.at, policy.version)]


def _end_coverage(command: EndCoverage, worker: Worker, book: PolicyBook) -> list[Decided]:
    if command.reason == "deceased":
        return _record_death(command, worker)
    current = worker.coverage_on(command.end_date)
    if current is None or current.ended_on is not None:
        raise RefusedError(
            [Problem("end_date", f"no open coverage on {command.end_date}")], conflict=True
        )
    reason = command.reason
    if reason == "expired" and worker.birth_date is not None:
        # A period cut at the age limit ends for that reason, whoever notices it ended.
        limit = book.in_force(current.start_date).coverage_age_limit
        if current.end_date == coverage_age_limit_end(worker.birth_date, limit):
            reason = "age_limit"
    event = CoverageEnded(
        worker_id=command.worker_id,
        coverage_id=current.coverage_id,
        end_date=command.end_date,
        reason=reason,
    )
    return [Decided("CoverageEnded", event, command.at, None)]


def _record_death(command: EndCoverage, worker: Worker) -> list[Decided]:
    """A death ends the coverage that ran on that day (even one already closed as expired
    after it), cancels any coverage beginning later, and is recorded in every case: the
    person's death does not depend on whether the expiry job or the claim came first."""
    if worker.deceased:
        return []
    died_on = command.end_date
    ended = []
    for coverage in worker.coverages:
        last = coverage.ended_on or coverage.end_date
        if coverage.start_date > died_on or coverage.start_date <= died_on < last:
            # Cut on the day of death; a coverage that would begin later never runs (its end
            # falls before its start, so no month of it is ever invoiced or covered).
            ended.append(coverage)
    if not ended:
        before = [c for c in worker.coverages if c.start_date <= died_on]
        if not before:
            return []  # never covered: no coverage to end and nothing to bill
        # The coverage had ended on or before the day of death: keep why the person left.
        last_coverage = max(before, key=lambda c: c.start_date)
        ended.append(last_coverage)
    return [
        Decided(
            "CoverageEnded",
            CoverageEnded(
                worker_id=command.worker_id,
                coverage_id=coverage.coverage_id,
                end_date=min(died_on, coverage.ended_on or coverage.end_date),
                reason="deceased",
            ),
            command.at,
            None,
        )
        for coverage in ended
    ]


def evolve(worker: Worker, data: BaseModel) -> Worker:
    if isinstance(data, WorkerRegistered):
        return replace(
            worker,
            registered=True,
            personal=data.personal,
            birth_date=data.birth_date,
            sex=data.sex,
            occupation_code=data.occupation_code,
            kelurahan_code=data.kelurahan_code,
        )
    if isinstance(data, WorkerDetailsCorrected):
        return replace(
            worker,
            personal=data.personal or worker.personal,
            birth_date=data.birth_date or worker.birth_date,
            sex=data.sex or worker.sex,
            occupation_code=data.occupation_code or worker.occupation_code,
            kelurahan_code=data.kelurahan_code or worker.kelurahan_code,
        )
    if isinstance(data, CoverageStarted):
        coverage = Coverage(data.coverage_id, data.start_date, data.end_date)
        return replace(
            worker, coverages=(*worker.coverages, coverage), membership_no=data.membership_no
        )
    if isinstance(data, CoverageEnded):
        coverages = tuple(
            replace(c, ended_on=data.end_date) if c.coverage_id == data.coverage_id else c
            for c in worker.coverages
        )
        return replace(
            worker, coverages=coverages, deceased=worker.deceased or data.reason == "deceased"
        )
    return worker


@dataclass(frozen=True)
class WorkerRules:
    """The worker aggregate as a Decider, under the programme's rules."""

    book: PolicyBook
    initial: Worker = Worker()

    def decide(self, command: Command, worker: Worker) -> list[Decided]:
        return decide(command, worker, self.book)

    def evolve(self, worker: Worker, event: Recorded) -> Worker:
        return evolve(worker, event.data)
