"""Verification's decisions: three steps in order, rejections with reasons, designation within
quota and budget. ``decide(command, case, facts, book) -> events``; ``evolve(case, event)``;
``allot(designations, standing, book)`` the quota and budget across designations in order.

Pure: the caller passes the worker's facts (from enrolment's events), the cohort's standing
(designations and budget so far) and the time of the command.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Literal
from uuid import UUID

from contract.events.verification import Level, RejectionReason, VerificationRejected, Verified
from contract.policy import PolicyBook
from contract.policy.eligibility import check_age
from shared.business_calendar import business_day
from shared.decisions import Decided, Problem, Recorded, RefusedError

LEVELS: tuple[Level, ...] = ("kelurahan", "kecamatan", "city")
Stage = Literal["kelurahan", "kecamatan", "city", "designated", "rejected"]


@dataclass(frozen=True)
class Facts:
    """What enrolment's events say about the worker, as verification's projection holds them."""

    worker_id: UUID
    kelurahan_code: str
    kecamatan_code: str
    birth_date: date
    corrected_at: datetime | None = None
    died_on: date | None = None  # the death enrolment recorded (an approved death claim)


@dataclass(frozen=True)
class CohortStanding:
    """Designations so far in a cohort and fiscal year, and its budget."""

    designated: int
    committed: int  # rupiah: designated worker-months x premium
    allocated: int  # rupiah: BudgetAllocated for the cohort and year
    quota: int


@dataclass(frozen=True)
class Verify:
    worker_id: UUID
    level: Level
    at: datetime
    note: str | None = None


@dataclass(frozen=True)
class Reject:
    worker_id: UUID
    level: Level
    reasons: tuple[RejectionReason, ...]
    at: datetime
    note: str | None = None


@dataclass(frozen=True)
class Designate:
    worker_id: UUID
    cohort: Literal["regular", "incidental"]
    cover_months: int
    coverage_start: date
    fiscal_year: int
    decree_ref: str
    at: datetime


Command = Verify | Reject | Designate


@dataclass(frozen=True)
class Case:
    """The verification case of one worker, folded from its stream."""

    case_id: UUID | None = None
    passed: tuple[Level, ...] = ()
    rejected_level: Level | None = None
    rejected_at: datetime | None = None
    designated_years: tuple[int, ...] = ()

    def stage(self, facts: Facts) -> Stage:
        if self.rejected_level is not None:
            assert self.rejected_at is not None
            reopened = facts.corrected_at is not None and facts.corrected_at > self.rejected_at
            if not reopened:
                return "rejected"
        if "city" in self.passed:
            return "designated"
        return LEVELS[len(self.passed)]


def decide(command: Command, case: Case, facts: Facts, book: PolicyBook) -> list[Decided]:
    """The case's own rules; a designation they pass is then allotted within its cohort's
    quota and budget (``allot``)."""
    stage = case.stage(facts)
    level: Level = "city" if isinstance(command, Designate) else command.level
    if isinstance(command, Designate) and stage == "designated":
        # A renewal: the city designates a covered worker again for a later fiscal year.
        if command.fiscal_year <= max(case.designated_years):
            raise RefusedError(
                [
                    Problem(
                        "fiscal_year",
                        f"already designated for {max(case.designated_years)}; a renewal is "
                        "for a later fiscal year",
                    )
                ],
                conflict=True,
            )
        stage = "city"
    if stage != level:
        detail = (
            "the case was rejected; it reopens when the worker's details are corrected"
            if stage == "rejected"
            else f"the case is at the {stage} step, not {level}"
        )
        raise RefusedError([Problem("level", detail)], conflict=True)
    case_id = case.case_id or facts.worker_id
    policy = book.in_force(business_day(command.at))
    if isinstance(command, Reject):
        if "other" in command.reasons and not command.note:
            raise RefusedError([Problem("note", "reason 'other' needs a note")])
        event = VerificationRejected(
            worker_id=command.worker_id,
            case_id=case_id,
            level=command.level,
            reasons=list(command.reasons),
            note=command.note,
        )
        return [Decided("VerificationRejected", event, command.at, policy.version)]
    if isinstance(command, Verify):
        if command.level == "city":
            raise RefusedError([Problem("level", "the city level is a designation")])
        verified = Verified(
            worker_id=command.worker_id, case_id=case_id, level=command.level, note=command.note
        )
        return [Decided("Verified", verified, command.at, policy.version)]
    return _designate(command, case_id, facts, book)


def _designate(command: Designate, case_id: UUID, facts: Facts, book: PolicyBook) -> list[Decided]:
    policy = book.in_force(command.coverage_start)
    rule = policy.cohorts[command.cohort]
    if facts.died_on is not None:
        died = f"the worker died on {facts.died_on} (an approved death claim); a deceased person "
        raise RefusedError([Problem("worker_id", died + "is not designated")], conflict=True)
    problems = []
    if not rule.min_months <= command.cover_months <= rule.max_months:
        problems.append(
            Problem(
                "cover_months",
                f"{command.cohort} cover is {rule.min_months} to {rule.max_months} months, "
                f"not {command.cover_months}",
            )
        )
    problems += check_age(facts.birth_date, command.coverage_start, policy, field="coverage_start")
    if problems:
        raise RefusedError(problems)
    event = Verified(
        worker_id=command.worker_id,
        case_id=case_id,
        level="city",
        cohort=command.cohort,
        cover_months=command.cover_months,
        coverage_start=command.coverage_start,
        fiscal_year=command.fiscal_year,
        decree_ref=command.decree_ref,
    )
    return [Decided("Verified", event, command.at, policy.version)]


def allot(
    designations: Sequence[Designate], standing: CohortStanding, book: PolicyBook
) -> list[RefusedError | None]:
    """Designations of one cohort and fiscal year, in order, against the standing those
    before them leave: each one that would exceed the quota or the budget is refused with the
    numbers it met (None: allotted), and the others go on counting."""
    refusals: list[RefusedError | None] = []
    for command in designations:
        problems = _beyond_standing(command, standing, book)
        refusals.append(RefusedError(problems) if problems else None)
        if not problems:
            cost = designation_cost(command.cover_months, book, command.coverage_start)
            standing = replace(
                standing, designated=standing.designated + 1, committed=standing.committed + cost
            )
    return refusals


def _beyond_standing(
    command: Designate, standing: CohortStanding, book: PolicyBook
) -> list[Problem]:
    premium = book.in_force(command.coverage_start).monthly_premium.total
    cost = command.cover_months * premium
    problems = []
    if standing.designated >= standing.quota:
        problems.append(
            Problem(
                "cohort",
                f"the {command.cohort} quota for {command.fiscal_year} is full: "
                f"{standing.designated} of {standing.quota} designated",
            )
        )
    remaining = standing.allocated - standing.committed
    if cost > remaining:
        problems.append(
            Problem(
                "cohort",
                f"cover costs Rp{cost:,} ({command.cover_months} months x "
                f"Rp{premium:,}) but the {command.cohort} budget for "
                f"{command.fiscal_year} has Rp{remaining:,} left (allocated "
                f"Rp{standing.allocated:,}, committed Rp{standing.committed:,})",
            )
        )
    return problems


def designation_cost(cover_months: int, book: PolicyBook, start: date) -> int:
    return cover_months * book.in_force(start).monthly_premium.total


def evolve(case: Case, event: Recorded) -> Case:
    data = event.data
    if isinstance(data, Verified):
        passed = case.passed if case.rejected_level is None else ()
        years = (
            (*case.designated_years, data.fiscal_year)
            if data.fiscal_year
            else case.designated_years
        )
        return replace(
            case,
            case_id=data.case_id,
            passed=(*passed, data.level),
            rejected_level=None,
            rejected_at=None,
            designated_years=years,
        )
    if isinstance(data, VerificationRejected):
        return replace(
            case,
            case_id=data.case_id,
            passed=(),
            rejected_level=data.level,
            rejected_at=event.recorded_at,
        )
    return case


@dataclass(frozen=True)
class Designation:
    """A designation with the facts of its worker: one item of a batch of designations."""

    command: Designate
    facts: Facts


@dataclass(frozen=True)
class DesignationRules:
    """Designations as a Decider over workers' cases, each with its worker's facts; the
    cohort's quota and budget are ``allot``'s, across the batch."""

    book: PolicyBook
    initial: Case = Case()

    def decide(self, designation: Designation, case: Case) -> list[Decided]:
        return decide(designation.command, case, designation.facts, self.book)

    def evolve(self, case: Case, event: Recorded) -> Case:
        return evolve(case, event)


@dataclass(frozen=True)
class CaseRules:
    """A worker's verification case as a Decider: the rules, with the facts the decision reads
    from enrolment's events."""

    book: PolicyBook
    facts: Facts
    initial: Case = Case()

    def decide(self, command: Command, case: Case) -> list[Decided]:
        return decide(command, case, self.facts, self.book)

    def evolve(self, case: Case, event: Recorded) -> Case:
        return evolve(case, event)
