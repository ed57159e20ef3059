"""Claims decisions: automatic, by the rules of the brief, with reasons an heir can hear.

``decide_claim(claim, facts, book)`` is pure: the caller passes the worker's membership status
on the incident date (from coverage and paid months), the number of paid months, and any death
already established for the worker.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Literal
from uuid import UUID

from contract.events.claims import (
    BenefitItem,
    ClaimApproved,
    ClaimFiled,
    ClaimPaid,
    ClaimRejected,
    ClaimRejectionReason,
    ClaimReopened,
    ScholarshipInstalmentApproved,
)
from contract.policy import PolicyBook
from contract.policy.membership import Status
from services.claims.benefits import (
    Child,
    Item,
    jkk_death,
    jkm_death,
    medical,
    rupiah,
    scholarship,
    school_year_start,
    temporary_incapacity,
    total_permanent_disability,
)
from shared.decisions import Decided, Problem, Recorded, RefusedError

AccidentBenefit = Literal["medical", "temporary_incapacity", "total_permanent_disability"]


@dataclass(frozen=True)
class Claim:
    claim_id: UUID
    worker_id: UUID
    benefit: Literal["JKM", "JKK"]
    kind: Literal["death", "accident", "scholarship"]
    incident_date: date
    filed_on: date
    accident_benefit: AccidentBenefit | None = None
    months_incapacitated: int | None = None
    medical_costs: int | None = None
    children: tuple[Child, ...] = ()


@dataclass(frozen=True)
class Death:
    benefit: Literal["JKM", "JKK"]
    died_on: date


@dataclass(frozen=True)
class Facts:
    status: Status  # on the incident date
    paid_months: int  # across fiscal years and cohorts
    arrears: tuple[str, ...]
    death: Death | None  # a death already established by an approved claim


@dataclass(frozen=True)
class Approved:
    items: tuple[Item, ...]  # paid with the approval
    death_date: date | None
    note: str
    policy_version: str
    open_instalments: tuple[Item, ...] = ()  # a scholarship's later school years, not yet due

    @property
    def total(self) -> int:
        return sum(item.amount for item in self.items)


@dataclass(frozen=True)
class Rejected:
    reasons: tuple[ClaimRejectionReason, ...]
    note: str
    policy_version: str


@dataclass(frozen=True)
class Pending:
    note: str


Decision = Approved | Rejected | Pending


def claim_filed(filed: ClaimFiled, filed_on: date, children: tuple[Child, ...]) -> Claim:
    """The claim as the rules decide it, from its filing (the children's details opened)."""
    as_filed = filed.model_dump(include=set(CLAIM_AS_FILED))
    return Claim(**as_filed, filed_on=filed_on, children=children)


# What a filing records of the claim as the rules decide it (beside sealed personal details).
CLAIM_AS_FILED = frozenset(
    {
        "claim_id",
        "worker_id",
        "benefit",
        "kind",
        "incident_date",
        "accident_benefit",
        "months_incapacitated",
        "medical_costs",
    }
)


def malformed(claim: Claim) -> list[Problem]:
    """What makes a claim impossible to decide at all (refused at filing)."""
    problems = []
    if claim.benefit == "JKM" and claim.kind == "accident":
        problems.append(Problem("kind", "an accident is a JKK claim"))
    if claim.kind == "accident" and claim.accident_benefit is None:
        problems.append(Problem("accident_benefit", "say which benefit the accident claim is for"))
    if claim.accident_benefit == "temporary_incapacity" and not claim.months_incapacitated:
        problems.append(Problem("months_incapacitated", "needed for temporary incapacity"))
    if claim.accident_benefit == "medical" and claim.medical_costs is None:
        problems.append(Problem("medical_costs", "needed for medical care"))
    if claim.kind == "scholarship" and not claim.children:
        problems.append(Problem("children", "a scholarship claim names the children"))
    if claim.incident_date > claim.filed_on:
        problems.append(Problem("incident_date", "after the filing date"))
    return problems


def decide_claim(claim: Claim, facts: Facts, book: PolicyBook) -> Decision:
    policy = book.governing(claim.incident_date)
    version = policy.version
    b = policy.benefits
    if claim.benefit == "JKK":
        anniversary = _add_years(claim.incident_date, b.jkk_lapse_years)
        if claim.filed_on > anniversary:
            return Rejected(
                ("lapsed",),
                f"A work-accident claim lapses {b.jkk_lapse_years} years after the accident "
                f"({claim.incident_date}); this one was filed on {claim.filed_on}.",
                version,
            )
    if claim.kind == "scholarship":
        return _scholarship(claim, facts, book)
    if claim.kind == "death" and facts.death is not None:
        return Rejected(
            ("duplicate_death_claim",),
            f"The worker's death on {facts.death.died_on} was already compensated.",
            version,
        )
    if facts.status == "NOT_COVERED":
        return Rejected(
            ("not_covered",), f"The worker was not covered on {claim.incident_date}.", version
        )
    if facts.status == "INACTIVE":
        return Rejected(
            ("inactive",),
            f"On {claim.incident_date} the worker's premiums were unpaid for more than "
            f"{policy.grace_months} months (months in arrears: {', '.join(facts.arrears)}), so "
            "the membership was inactive.",
            version,
        )
    if facts.status == "GRACE":
        return Pending(
            f"On {claim.incident_date} the premiums for {', '.join(facts.arrears)} were not yet "
            "paid (grace period). The claim will be decided as soon as they are paid; nothing "
            "needs to be filed again."
        )
    items = _items(claim, book)
    death_date = claim.incident_date if claim.kind == "death" else None
    return Approved(tuple(items), death_date, _approval_note(items, version), version)


def _items(claim: Claim, book: PolicyBook) -> list[Item]:
    policy = book.governing(claim.incident_date)
    if claim.kind == "death":
        return jkm_death(policy) if claim.benefit == "JKM" else jkk_death(policy)
    if claim.accident_benefit == "temporary_incapacity":
        return temporary_incapacity(policy, claim.months_incapacitated or 0)
    if claim.accident_benefit == "total_permanent_disability":
        return total_permanent_disability(policy)
    return medical(claim.medical_costs or 0)


def _scholarship(claim: Claim, facts: Facts, book: PolicyBook) -> Decision:
    policy = book.governing(claim.incident_date)
    b = policy.benefits
    if facts.death is None:
        return Rejected(
            ("not_eligible",),
            "A scholarship follows the worker's death (or total disability) established by an "
            "approved claim; there is none for this worker.",
            policy.version,
        )
    minimum = b.scholarship_min_paid_months_after_jkm_death
    if facts.death.benefit == "JKM" and facts.paid_months < minimum:
        return Rejected(
            ("insufficient_contributions",),
            f"After a death not caused by work, a scholarship needs at least {minimum} paid "
            f"months; the worker had {facts.paid_months}.",
            policy.version,
        )
    due, later = scholarship(policy, list(claim.children), claim.filed_on)
    if not due:
        return Rejected(
            ("not_eligible",),
            "No named child has school years left before turning 23.",
            policy.version,
        )
    note = _approval_note(due, policy.version)
    if later:
        note += (
            f" {len(later)} later school years ({rupiah(sum(i.amount for i in later))}) stay "
            "open on the award: each is paid once its school year begins, while the child is "
            "still eligible (under 23, not married, not working)."
        )
    return Approved(tuple(due), None, note, policy.version, tuple(later))


def _approval_note(items: list[Item], version: str) -> str:
    lines = " ".join(item.description for item in items)
    total = sum(item.amount for item in items)
    return f"Approved under programme policy {version}. {lines} Total {rupiah(total)}."


def _add_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


@dataclass(frozen=True)
class FileClaim:
    """A claim filed, with its sealed personal details and the worker's facts when filed."""

    claim: Claim
    filed: ClaimFiled
    facts: Facts
    at: datetime


# Rejections that rest on another service's facts (billing's paid months, enrolment's
# coverage): revised when facts that service had recorded before the rejection arrive later.
REVISABLE: frozenset[ClaimRejectionReason] = frozenset(
    {"insufficient_contributions", "inactive", "not_covered"}
)


@dataclass(frozen=True)
class Reconsider:
    """A claim decided again as a fact another service recorded at ``fact_recorded_at`` is
    consumed: a waiting claim, on the worker's facts now; or a rejection on another service's
    facts decided after that fact was recorded (it was decided without it), on the facts
    recorded by ``facts_as_of``, which must not be later than the rejection: what was known
    when it was decided, never what happened since, so that the outcome does not depend on
    which topic claims read first. A revision only ever approves: a rejection that still holds
    is not recorded twice."""

    claim: Claim
    facts: Facts
    at: datetime
    fact_recorded_at: datetime
    facts_as_of: datetime | None  # None: every fact read (a waiting claim)


@dataclass(frozen=True)
class PayClaim:
    claim_id: UUID
    payment_ref: str
    paid_on: date
    amount: int
    at: datetime


@dataclass(frozen=True)
class ApproveInstalment:
    """A later school year of a scholarship award, asked for once it has begun, with what the
    heir declares of the child."""

    claim_id: UUID
    child: str
    school_year: str
    today: date  # the business day the instalment is asked for
    married: bool
    working: bool
    at: datetime


ClaimCommand = FileClaim | Reconsider | PayClaim | ApproveInstalment


@dataclass(frozen=True)
class ClaimState:
    """One claim as its stream tells it."""

    worker_id: UUID | None = None
    status: Literal["none", "pending", "approved", "rejected", "paid"] = "none"
    total: int | None = None  # what the next payment pays: the approval, or an instalment
    open_instalments: tuple[BenefitItem, ...] = ()  # a scholarship award's years not yet paid
    rejected_for: frozenset[ClaimRejectionReason] = frozenset()
    rejected_at: datetime | None = None  # when the store recorded the rejection

    def rejected_without(self, fact_recorded_at: datetime, facts_as_of: datetime | None) -> bool:
        """Rejected on another service's facts, and decided after that service recorded a fact
        now consumed: decided without it, so decided again, on facts recorded by
        ``facts_as_of`` (none recorded after the rejection: it is judged on what was known)."""
        return (
            self.status == "rejected"
            and bool(self.rejected_for & REVISABLE)
            and self.rejected_at is not None
            and self.rejected_at >= fact_recorded_at
            and facts_as_of is not None
            and facts_as_of <= self.rejected_at
        )


@dataclass(frozen=True)
class ClaimRules:
    """The claim aggregate as a Decider."""

    book: PolicyBook
    initial: ClaimState = ClaimState()

    def decide(self, command: ClaimCommand, state: ClaimState) -> list[Decided]:
        if isinstance(command, FileClaim):
            if state.status != "none":
                raise RefusedError([Problem("claim_id", "this claim was filed already")], True)
            decision = decide_claim(command.claim, command.facts, self.book)
            filed = Decided("ClaimFiled", command.filed, command.at, None)
            return [filed, *decision_events(command.claim, decision, command.at)]
        if isinstance(command, Reconsider):
            if state.status == "pending":
                decision = decide_claim(command.claim, command.facts, self.book)
                return decision_events(command.claim, decision, command.at)
            if state.rejected_without(command.fact_recorded_at, command.facts_as_of):
                decision = decide_claim(command.claim, command.facts, self.book)
                if isinstance(decision, Approved):
                    return decision_events(command.claim, decision, command.at)
                if isinstance(decision, Pending):
                    reopened = ClaimReopened(
                        claim_id=command.claim.claim_id,
                        worker_id=command.claim.worker_id,
                        policy_note=decision.note,
                    )
                    return [Decided("ClaimReopened", reopened, command.at, None)]
            return []
        if isinstance(command, ApproveInstalment):
            return _instalment(command, state)
        return _pay(command, state)

    def evolve(self, state: ClaimState, event: Recorded) -> ClaimState:
        data = event.data
        if isinstance(data, ClaimFiled):
            return replace(state, worker_id=data.worker_id, status="pending")
        if isinstance(data, ClaimApproved):
            return replace(
                state,
                status="approved",
                total=data.total,
                open_instalments=tuple(data.open_instalments),
            )
        if isinstance(data, ScholarshipInstalmentApproved):
            still_open = tuple(
                i
                for i in state.open_instalments
                if (i.child, i.school_year) != (data.item.child, data.item.school_year)
            )
            return replace(
                state, status="approved", total=data.item.amount, open_instalments=still_open
            )
        if isinstance(data, ClaimRejected):
            return replace(
                state,
                status="rejected",
                rejected_for=frozenset(data.reasons),
                rejected_at=event.recorded_at,
            )
        if isinstance(data, ClaimReopened):
            return replace(state, status="pending")
        if isinstance(data, ClaimPaid):
            return replace(state, status="paid")
        return state


@dataclass(frozen=True)
class WorkerClaims:
    """A worker's claims as their events tell it, across the claims' streams: what the
    duplicate-death rule needs (each claim's benefit, the deaths approved)."""

    benefits: tuple[tuple[UUID, Literal["JKM", "JKK"]], ...] = ()
    deaths: tuple[tuple[UUID, date], ...] = ()

    def death_other_than(self, claim_id: UUID) -> Death | None:
        benefits = dict(self.benefits)
        for approved, died_on in self.deaths:
            if approved != claim_id:
                return Death(benefits[approved], died_on)
        return None


def evolve_worker_claims(claims: WorkerClaims, event: Recorded) -> WorkerClaims:
    data = event.data
    if isinstance(data, ClaimFiled):
        return replace(claims, benefits=(*claims.benefits, (data.claim_id, data.benefit)))
    if isinstance(data, ClaimApproved) and data.death_date is not None:
        return replace(claims, deaths=(*claims.deaths, (data.claim_id, data.death_date)))
    return claims


def _instalment(command: ApproveInstalment, state: ClaimState) -> list[Decided]:
    """Each later school year once, when it has begun and the child is still eligible."""
    if state.status == "none":
        raise RefusedError([Problem("claim_id", "no such claim")], conflict=True)
    if state.status == "approved":
        raise RefusedError(
            [Problem("claim_id", "the last approval is not paid yet; pay it first")], True
        )
    due = [
        i
        for i in state.open_instalments
        if (i.child, i.school_year) == (command.child, command.school_year)
    ]
    if not due:
        raise RefusedError(
            [
                Problem(
                    "school_year",
                    f"{command.school_year} for {command.child} is not open on the award (paid "
                    "already, past the child's 23rd year, or no scholarship)",
                )
            ],
            conflict=True,
        )
    first_year = int(command.school_year.split("/")[0])
    if command.today < school_year_start(first_year):
        raise RefusedError(
            [
                Problem(
                    "school_year",
                    f"the {command.school_year} school year begins on "
                    f"{school_year_start(first_year)}; it is paid once it has begun",
                )
            ]
        )
    if command.married or command.working:
        raise RefusedError(
            [Problem("child", f"{command.child} is married or working: the scholarship ends")]
        )
    assert state.worker_id is not None  # set by the filing
    approved = ScholarshipInstalmentApproved(
        claim_id=command.claim_id, worker_id=state.worker_id, item=due[0]
    )
    return [Decided("ScholarshipInstalmentApproved", approved, command.at, None)]


def _pay(command: PayClaim, state: ClaimState) -> list[Decided]:
    if state.status == "none":
        raise RefusedError([Problem("claim_id", "no such claim")], conflict=True)
    if state.status != "approved":
        raise RefusedError(
            [Problem("claim_id", f"the claim is {state.status}, not approved")], conflict=True
        )
    assert state.worker_id is not None  # set by the filing
    assert state.total is not None  # set by the approval
    if command.amount != state.total:
        raise RefusedError(
            [Problem("amount", f"Rp{command.amount:,} differs from the approved Rp{state.total:,}")]
        )
    paid = ClaimPaid(
        claim_id=command.claim_id,
        worker_id=state.worker_id,
        amount=command.amount,
        payment_ref=command.payment_ref,
        paid_on=command.paid_on,
    )
    return [Decided("ClaimPaid", paid, command.at, None, worker_id=state.worker_id)]


def decision_events(claim: Claim, decision: Decision, at: datetime) -> list[Decided]:
    """What a decision records: approval with its items, rejection with reasons; nothing while
    the claim waits."""
    if isinstance(decision, Approved):
        approved = ClaimApproved(
            claim_id=claim.claim_id,
            worker_id=claim.worker_id,
            items=[benefit_item(i) for i in decision.items],
            total=decision.total,
            death_date=decision.death_date,
            policy_note=decision.note,
            open_instalments=[benefit_item(i) for i in decision.open_instalments],
        )
        return [Decided("ClaimApproved", approved, at, decision.policy_version)]
    if isinstance(decision, Rejected):
        rejected = ClaimRejected(
            claim_id=claim.claim_id,
            worker_id=claim.worker_id,
            reasons=list(decision.reasons),
            policy_note=decision.note,
        )
        return [Decided("ClaimRejected", rejected, at, decision.policy_version)]
    return []


def benefit_item(item: Item) -> BenefitItem:
    return BenefitItem(
        code=item.code,
        amount=item.amount,
        description=item.description,
        child=item.child,
        school_year=item.school_year,
    )
