"""Claims decisions, given the worker's facts, when a claim, then a decision with reasons."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from contract.events.claims import ClaimApproved, ClaimFiled, ClaimRejected, ClaimRejectionReason
from contract.policy import policy_book
from contract.policy.membership import standing_on
from services.claims.benefits import Child
from services.claims.domain import (
    Approved,
    ApproveInstalment,
    Claim,
    ClaimRules,
    ClaimState,
    Death,
    Facts,
    PayClaim,
    Pending,
    Reconsider,
    Rejected,
    WorkerClaims,
    claim_filed,
    decide_claim,
    decision_events,
    evolve_worker_claims,
    malformed,
)
from shared.decisions import Recorded, RefusedError
from shared.sealing import SealedPersonal

pytestmark = pytest.mark.unit
BOOK = policy_book()
WORKER = uuid.uuid4()
COVER = [(date(2024, 11, 1), date(2025, 10, 31))]


def claim(**changes: object) -> Claim:
    fields: dict[str, object] = {
        "claim_id": uuid.uuid4(),
        "worker_id": WORKER,
        "benefit": "JKM",
        "kind": "death",
        "incident_date": date(2025, 2, 10),
        "filed_on": date(2025, 3, 1),
    }
    fields.update(changes)
    return Claim(**fields)  # type: ignore[arg-type]


def facts_on(
    day: date, paid: list[str], death: Death | None = None, cover: list[tuple[date, date]] = COVER
) -> Facts:
    standing = standing_on(day, cover, paid)
    return Facts(standing.status, len(paid), standing.arrears, death)


def rejection(rejected: Claim, reason: ClaimRejectionReason) -> ClaimRejected:
    return ClaimRejected(
        claim_id=rejected.claim_id, worker_id=rejected.worker_id, reasons=[reason], policy_note="-"
    )


def test_an_active_member_s_death_is_approved_at_42_million() -> None:
    decision = decide_claim(
        claim(), facts_on(date(2025, 2, 10), ["2024-11", "2024-12", "2025-01", "2025-02"]), BOOK
    )
    assert isinstance(decision, Approved)
    assert decision.total == 42_000_000
    assert decision.death_date == date(2025, 2, 10)


def test_a_death_on_the_first_day_of_grace_waits_for_the_arrears() -> None:
    decision = decide_claim(
        claim(incident_date=date(2024, 12, 1)), facts_on(date(2024, 12, 1), ["2024-11"]), BOOK
    )
    assert isinstance(decision, Pending)
    assert "2024-12" in decision.note


def test_a_death_on_the_last_day_of_coverage_is_covered() -> None:
    paid = [f"{y}-{m:02d}" for y, m in [(2024, 11), (2024, 12)] + [(2025, m) for m in range(1, 11)]]
    decision = decide_claim(
        claim(incident_date=date(2025, 10, 31)), facts_on(date(2025, 10, 31), paid), BOOK
    )
    assert isinstance(decision, Approved)
    after = decide_claim(
        claim(incident_date=date(2025, 11, 1)), facts_on(date(2025, 11, 1), paid), BOOK
    )
    assert isinstance(after, Rejected)
    assert after.reasons == ("not_covered",)


def test_beyond_grace_the_claim_is_rejected_as_inactive() -> None:
    decision = decide_claim(
        claim(incident_date=date(2025, 3, 5)), facts_on(date(2025, 3, 5), ["2024-11"]), BOOK
    )
    assert isinstance(decision, Rejected)
    assert decision.reasons == ("inactive",)


def test_a_work_accident_claim_lapses_five_years_after_the_accident() -> None:
    jkk = {
        "benefit": "JKK",
        "kind": "accident",
        "accident_benefit": "medical",
        "medical_costs": 1_000_000,
    }
    facts = facts_on(date(2025, 2, 10), ["2025-02"])
    on_time = decide_claim(claim(**jkk, filed_on=date(2030, 2, 10)), facts, BOOK)
    late = decide_claim(claim(**jkk, filed_on=date(2030, 2, 11)), facts, BOOK)
    assert isinstance(on_time, Approved)
    assert isinstance(late, Rejected)
    assert late.reasons == ("lapsed",)


def test_jkm_never_lapses() -> None:
    facts = facts_on(date(2025, 2, 10), ["2025-02"])
    assert isinstance(decide_claim(claim(filed_on=date(2040, 1, 1)), facts, BOOK), Approved)


def test_a_work_accident_death_is_70_million() -> None:
    decision = decide_claim(claim(benefit="JKK"), facts_on(date(2025, 2, 10), ["2025-02"]), BOOK)
    assert isinstance(decision, Approved)
    assert decision.total == 70_000_000


CHILD = (Child("child-1", date(2021, 6, 1), "TK"),)


def test_a_scholarship_after_a_jkm_death_needs_the_36th_paid_month() -> None:
    death = Death("JKM", date(2025, 7, 20))
    scholarship = claim(
        kind="scholarship",
        incident_date=date(2025, 7, 20),
        filed_on=date(2025, 8, 1),
        children=CHILD,
    )
    short = decide_claim(scholarship, Facts("ACTIVE", 35, (), death), BOOK)
    enough = decide_claim(scholarship, Facts("ACTIVE", 36, (), death), BOOK)
    assert isinstance(short, Rejected)
    assert short.reasons == ("insufficient_contributions",)
    assert isinstance(enough, Approved)
    # Filed in the 2025/2026 school year: that year is paid now, the award's other years later.
    assert [(i.child, i.school_year, i.amount) for i in enough.items] == [
        ("child-1", "2025/2026", 1_500_000)
    ]
    assert enough.total == 1_500_000
    assert sum(i.amount for i in enough.open_instalments) == 87_000_000 - 1_500_000
    assert min(i.school_year or "" for i in enough.open_instalments) == "2026/2027"


def test_after_a_work_accident_death_a_scholarship_needs_no_minimum() -> None:
    scholarship = claim(
        benefit="JKK", kind="scholarship", incident_date=date(2025, 7, 20), children=CHILD
    )
    decision = decide_claim(
        scholarship, Facts("ACTIVE", 2, (), Death("JKK", date(2025, 7, 20))), BOOK
    )
    assert isinstance(decision, Approved)


def test_malformed_claims_are_refused_at_filing() -> None:
    assert [str(p) for p in malformed(claim(kind="accident"))] == [
        "kind: an accident is a JKK claim",
        "accident_benefit: say which benefit the accident claim is for",
    ]
    assert [str(p) for p in malformed(claim(kind="scholarship"))] == [
        "children: a scholarship claim names the children"
    ]


def test_a_rejection_on_stale_paid_months_is_revised_when_the_missing_month_arrives() -> None:
    rules = ClaimRules(BOOK)
    death = Death("JKM", date(2025, 7, 20))
    scholarship = claim(
        kind="scholarship",
        incident_date=date(2025, 7, 20),
        filed_on=date(2025, 8, 1),
        children=CHILD,
    )
    at = datetime(2025, 8, 1, 3, 0, tzinfo=UTC)
    rejected = rules.evolve(
        ClaimState(worker_id=WORKER, status="pending"),
        Recorded(rejection(scholarship, "insufficient_contributions"), at),
    )
    stale = Facts("ACTIVE", 35, (), death)
    caught_up = Facts("ACTIVE", 36, (), death)
    before, after = at - timedelta(minutes=5), at + timedelta(minutes=5)

    # The 36th month billing had recorded before the rejection: the claim is approved.
    [approved] = rules.decide(Reconsider(scholarship, caught_up, at, before, at), rejected)
    assert approved.event_type == "ClaimApproved"
    # A revision that still finds too few months records nothing more; a rejection is only
    # revised by facts older than it (never by a payment recorded after it).
    assert rules.decide(Reconsider(scholarship, stale, at, before, at), rejected) == []
    assert rules.decide(Reconsider(scholarship, caught_up, at, after, at), rejected) == []


def test_a_rejection_is_revised_only_on_the_facts_recorded_before_it() -> None:
    # Given a death claim rejected (not covered) at ``at``, on a payment recorded earlier
    # that claims read only now,
    rules = ClaimRules(BOOK)
    death = claim(incident_date=date(2025, 11, 4), filed_on=date(2025, 11, 10))
    at = datetime(2025, 11, 10, 3, 0, tzinfo=UTC)
    rejected = rules.evolve(
        ClaimState(worker_id=WORKER, status="pending"),
        Recorded(rejection(death, "not_covered"), at),
    )
    earlier, later = at - timedelta(minutes=5), at + timedelta(minutes=5)
    # a renewal that covers the death, recorded after the rejection, already read:
    renewed = Facts("ACTIVE", 13, (), None)

    # When it is decided again on facts that include the renewal (known up to ``later``),
    # then nothing is decided: what happened since cannot revise the rejection.
    assert rules.decide(Reconsider(death, renewed, at, earlier, later), rejected) == []
    assert rules.decide(Reconsider(death, renewed, at, earlier, None), rejected) == []
    # When decided on the facts recorded by the rejection, the renewal not among them, then
    # the rejection stands as well;
    known = Facts("NOT_COVERED", 12, (), None)
    assert rules.decide(Reconsider(death, known, at, earlier, at), rejected) == []
    # had a cover recorded before it covered the death, then it would be approved.
    covered = Facts("ACTIVE", 12, (), None)
    [approved] = rules.decide(Reconsider(death, covered, at, earlier, at), rejected)
    assert approved.event_type == "ClaimApproved"


def test_a_rejection_on_the_claims_own_facts_is_never_revised() -> None:
    rules = ClaimRules(BOOK)
    death = claim(incident_date=date(2025, 2, 10))
    at = datetime(2025, 3, 1, 3, 0, tzinfo=UTC)
    rejected = rules.evolve(
        ClaimState(worker_id=WORKER, status="pending"),
        Recorded(rejection(death, "duplicate_death_claim"), at),
    )
    paid = Facts("ACTIVE", 4, (), None)
    assert rules.decide(Reconsider(death, paid, at, at - timedelta(minutes=5), at), rejected) == []


def test_a_rejection_that_by_the_missing_facts_should_have_waited_is_reopened() -> None:
    rules = ClaimRules(BOOK)
    death = claim(incident_date=date(2025, 2, 10))
    at = datetime(2025, 3, 1, 3, 0, tzinfo=UTC)
    rejected = rules.evolve(
        ClaimState(worker_id=WORKER, status="pending"), Recorded(rejection(death, "inactive"), at)
    )
    # Claims had seen no payment (inactive); billing had recorded November to January.
    in_grace = Facts("GRACE", 3, ("2025-02",), None)
    earlier = at - timedelta(minutes=5)

    [reopened] = rules.decide(Reconsider(death, in_grace, at, earlier, at), rejected)

    assert reopened.event_type == "ClaimReopened"
    waiting = rules.evolve(rejected, Recorded(reopened.data, at))
    assert waiting.status == "pending"
    paid = Facts("ACTIVE", 4, (), None)
    [approved] = rules.decide(Reconsider(death, paid, at, at + timedelta(days=1), None), waiting)
    assert approved.event_type == "ClaimApproved"


def test_a_workers_claims_fold_to_the_death_already_established() -> None:
    worker, first, second = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    at = datetime(2025, 2, 1, tzinfo=UTC)
    sealed = SealedPersonal(key_id="k", alg="AES-256-GCM", ciphertext="eA==")
    events = [
        ClaimFiled(
            claim_id=first,
            worker_id=worker,
            benefit="JKK",
            kind="death",
            incident_date=date(2025, 1, 10),
            claimant=sealed,
        ),
        ClaimApproved(
            claim_id=first,
            worker_id=worker,
            items=[{"code": "JKK_DEATH", "amount": 70_000_000}],
            total=70_000_000,
            death_date=date(2025, 1, 10),
        ),
    ]
    claims = WorkerClaims()
    for data in events:
        claims = evolve_worker_claims(claims, Recorded(data, at))
    assert claims.death_other_than(second) == Death("JKK", date(2025, 1, 10))
    assert claims.death_other_than(first) is None  # a claim is not its own duplicate


def test_each_later_school_year_is_paid_once_when_begun_and_the_child_still_eligible() -> None:
    rules = ClaimRules(BOOK)
    scholarship = claim(
        kind="scholarship",
        incident_date=date(2025, 7, 20),
        filed_on=date(2025, 8, 1),
        children=CHILD,
    )
    at = datetime(2025, 8, 1, 3, 0, tzinfo=UTC)
    decision = decide_claim(scholarship, Facts("ACTIVE", 36, (), Death("JKM", at.date())), BOOK)
    state = ClaimState(worker_id=WORKER, status="pending")
    for event in decision_events(scholarship, decision, at):
        state = rules.evolve(state, Recorded(event.data, at))
    [paid] = rules.decide(PayClaim(scholarship.claim_id, "BPJS-1", at.date(), 1_500_000, at), state)
    state = rules.evolve(state, Recorded(paid.data, at))

    def ask(year: str, today: date, married: bool = False) -> ApproveInstalment:
        return ApproveInstalment(scholarship.claim_id, "child-1", year, today, married, False, at)

    with pytest.raises(RefusedError, match="begins on 2026-07-01"):
        rules.decide(ask("2026/2027", date(2026, 6, 30)), state)  # not begun: never paid early
    with pytest.raises(RefusedError, match="married or working"):
        rules.decide(ask("2026/2027", date(2026, 7, 15), married=True), state)
    [instalment] = rules.decide(ask("2026/2027", date(2026, 7, 15)), state)
    assert instalment.event_type == "ScholarshipInstalmentApproved"
    state = rules.evolve(state, Recorded(instalment.data, at))
    assert (state.status, state.total) == ("approved", 1_500_000)  # TK, second year
    [paid_again] = rules.decide(
        PayClaim(scholarship.claim_id, "BPJS-2", date(2026, 7, 20), 1_500_000, at), state
    )
    state = rules.evolve(state, Recorded(paid_again.data, at))
    with pytest.raises(RefusedError, match="not open on the award"):
        rules.decide(ask("2026/2027", date(2026, 8, 1)), state)  # each school year once
    assert len(state.open_instalments) == len(decision.open_instalments) - 1  # type: ignore[union-attr]


def test_a_claim_is_decided_again_as_its_filing_recorded_it() -> None:
    filed = ClaimFiled(
        claim_id=uuid.uuid4(),
        worker_id=WORKER,
        benefit="JKK",
        kind="accident",
        incident_date=date(2025, 1, 10),
        claimant=SealedPersonal(key_id="k", alg="AES-256-GCM", ciphertext="eA=="),
        accident_benefit="temporary_incapacity",
        months_incapacitated=3,
    )
    assert claim_filed(filed, date(2025, 2, 1), CHILD) == Claim(
        claim_id=filed.claim_id,
        worker_id=WORKER,
        benefit="JKK",
        kind="accident",
        incident_date=date(2025, 1, 10),
        filed_on=date(2025, 2, 1),
        accident_benefit="temporary_incapacity",
        months_incapacitated=3,
        children=CHILD,
    )
