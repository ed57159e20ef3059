"""Verification's decisions, given a case's events, when a command, then events or a refusal."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from contract.events.verification import VerificationRejected, Verified
from contract.policy import policy_book
from services.verification.domain import (
    Case,
    CohortStanding,
    Designate,
    Facts,
    Reject,
    Verify,
    allot,
    decide,
    evolve,
)
from shared.decisions import Recorded, RefusedError

pytestmark = pytest.mark.unit
BOOK = policy_book()
WORKER = uuid.uuid4()
AT = datetime(2024, 11, 4, 9, 0, tzinfo=UTC)
FACTS = Facts(WORKER, "33.75.01.1004", "33.75.01", date(1980, 7, 5))


def given(*commands: Verify | Reject, facts: Facts = FACTS) -> Case:
    case = Case()
    for command in commands:
        for decided in decide(command, case, facts, BOOK):
            case = evolve(case, Recorded(decided.data, command.at))
    return case


def designate(
    months: int = 12, cohort: str = "regular", start: date = date(2024, 12, 1)
) -> Designate:
    return Designate(WORKER, cohort, months, start, 2024, "SK 400/1/2024", AT)  # type: ignore[arg-type]


KELURAHAN = Verify(WORKER, "kelurahan", AT)
KECAMATAN = Verify(WORKER, "kecamatan", AT)


def test_the_three_steps_go_in_order() -> None:
    assert given().stage(FACTS) == "kelurahan"
    assert given(KELURAHAN).stage(FACTS) == "kecamatan"
    assert given(KELURAHAN, KECAMATAN).stage(FACTS) == "city"

    with pytest.raises(RefusedError, match="at the kelurahan step, not kecamatan") as refused:
        decide(KECAMATAN, given(), FACTS, BOOK)
    assert refused.value.conflict


def test_designation_records_cohort_months_start_year_and_decree() -> None:
    [decided] = decide(designate(), given(KELURAHAN, KECAMATAN), FACTS, BOOK)

    data = decided.data
    assert isinstance(data, Verified)
    assert (data.level, data.cohort, data.cover_months, data.fiscal_year) == (
        "city",
        "regular",
        12,
        2024,
    )
    assert decided.policy_version == "2023.1"


def test_incidental_cover_is_one_to_three_months_and_regular_is_twelve() -> None:
    case = given(KELURAHAN, KECAMATAN)
    decide(designate(3, "incidental"), case, FACTS, BOOK)
    for months, cohort in ((4, "incidental"), (6, "regular")):
        with pytest.raises(RefusedError, match="cover_months"):
            decide(designate(months, cohort), case, FACTS, BOOK)


def test_a_full_quota_is_refused_with_the_numbers() -> None:
    full = CohortStanding(designated=1000, committed=0, allocated=10**10, quota=1000)

    [refused] = allot([designate()], full, BOOK)
    assert refused is not None
    assert "quota for 2024 is full: 1000 of 1000" in str(refused)


def test_cover_beyond_the_budget_is_refused_with_the_numbers() -> None:
    tight = CohortStanding(designated=5, committed=1_008_000, allocated=1_200_000, quota=1000)

    [refused] = allot([designate()], tight, BOOK)

    assert "cover costs Rp201,600 (12 months x Rp16,800)" in str(refused)
    assert "has Rp192,000 left" in str(refused)


def test_exactly_the_remaining_budget_is_enough() -> None:
    exact = CohortStanding(designated=0, committed=0, allocated=3 * 16_800, quota=1000)
    assert allot([designate(3, "incidental")], exact, BOOK) == [None]


def test_designations_in_order_count_against_what_those_before_them_left() -> None:
    two_left = CohortStanding(designated=998, committed=0, allocated=10**10, quota=1000)
    thin = CohortStanding(designated=0, committed=0, allocated=3 * 16_800 + 16_800, quota=1000)

    quota = allot([designate(), designate(), designate()], two_left, BOOK)
    budget = allot([designate(3, "incidental")] * 2 + [designate(1, "incidental")], thin, BOOK)

    assert quota[:2] == [None, None]
    assert "full: 1000 of 1000 designated" in str(quota[2])
    assert budget[0] is None
    assert budget[2] is None  # after the one too dear, refused alone
    assert "has Rp16,800 left" in str(budget[1])


def test_designation_rechecks_age_on_the_coverage_start_date() -> None:
    turning_66 = Facts(WORKER, "33.75.01.1004", "33.75.01", date(1958, 11, 30))
    case = given(KELURAHAN, KECAMATAN, facts=turning_66)

    decide(designate(start=date(2024, 11, 29)), case, turning_66, BOOK)
    with pytest.raises(RefusedError, match="coverage_start: age 66"):
        decide(designate(start=date(2024, 11, 30)), case, turning_66, BOOK)


def test_a_rejected_case_reopens_after_a_correction() -> None:
    rejected = given(KELURAHAN, Reject(WORKER, "kecamatan", ("not_resident",), AT))
    assert rejected.stage(FACTS) == "rejected"
    with pytest.raises(RefusedError, match="reopens when the worker's details are corrected"):
        decide(KELURAHAN, rejected, FACTS, BOOK)

    corrected = Facts(WORKER, "33.75.01.1004", "33.75.01", date(1980, 7, 5), AT + timedelta(days=1))

    assert rejected.stage(corrected) == "kelurahan"
    [decided] = decide(KELURAHAN, rejected, corrected, BOOK)
    assert isinstance(decided.data, Verified)


def test_rejection_needs_reason_codes_and_other_needs_a_note() -> None:
    [decided] = decide(Reject(WORKER, "kelurahan", ("duplicate_person",), AT), given(), FACTS, BOOK)
    assert isinstance(decided.data, VerificationRejected)
    with pytest.raises(RefusedError, match="note"):
        decide(Reject(WORKER, "kelurahan", ("other",), AT), given(), FACTS, BOOK)


def test_a_designated_worker_is_renewed_for_a_later_fiscal_year_only() -> None:
    case = given(KELURAHAN, KECAMATAN)
    [first] = decide(designate(), case, FACTS, BOOK)
    designated = evolve(case, Recorded(first.data, AT))
    assert designated.stage(FACTS) == "designated"

    with pytest.raises(RefusedError, match="already designated for 2024"):
        decide(designate(), designated, FACTS, BOOK)
    renewal = Designate(WORKER, "regular", 12, date(2025, 12, 1), 2025, "SK 400/9/2025", AT)
    [renewed] = decide(renewal, designated, FACTS, BOOK)
    assert isinstance(renewed.data, Verified)
    assert renewed.data.fiscal_year == 2025


def test_a_deceased_worker_is_not_designated_and_the_refusal_says_why() -> None:
    deceased = Facts(
        WORKER, "33.75.01.1004", "33.75.01", date(1980, 7, 5), died_on=date(2025, 3, 2)
    )
    case = given(KELURAHAN, KECAMATAN, facts=deceased)

    with pytest.raises(RefusedError, match="died on 2025-03-02") as refused:
        decide(designate(), case, deceased, BOOK)
    assert refused.value.conflict
