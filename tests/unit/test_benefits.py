"""Benefit amounts: every rupiah of the brief."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contract.policy import policy_book
from services.claims.benefits import (
    Child,
    jkk_death,
    jkm_death,
    scholarship,
    scholarship_award,
    temporary_incapacity,
    total_permanent_disability,
)

pytestmark = pytest.mark.unit
POLICY = policy_book().in_force(date(2024, 6, 1))


def total(items: list) -> int:  # type: ignore[type-arg]
    return sum(item.amount for item in items)


def test_jkm_death_is_42_million_in_three_items() -> None:
    items = jkm_death(POLICY)
    assert [(i.code, i.amount) for i in items] == [
        ("JKM_LUMP_SUM", 20_000_000),
        ("JKM_PERIODIC", 12_000_000),
        ("FUNERAL", 10_000_000),
    ]
    assert total(items) == 42_000_000


def test_jkk_death_is_70_million_at_the_minimum_income_band() -> None:
    assert total(jkk_death(POLICY)) == 70_000_000


def test_jkk_death_benefit_is_at_least_20_million() -> None:
    low = POLICY.model_copy(update={"insured_income": 300_000})
    assert jkk_death(low)[0].amount == 20_000_000


def test_total_permanent_disability_is_56_times_income_plus_12_million() -> None:
    assert total(total_permanent_disability(POLICY)) == 56_000_000 + 12_000_000


@pytest.mark.parametrize(
    ("months", "expected"),
    [(1, 1_000_000), (12, 12_000_000), (13, 12_500_000), (18, 15_000_000)],
)
def test_temporary_incapacity_is_full_for_12_months_then_half(months: int, expected: int) -> None:
    assert total(temporary_incapacity(POLICY, months)) == expected


def test_a_child_starting_kindergarten_gets_the_full_87_million() -> None:
    child = Child("child-1", date(2020, 1, 10), "TK")
    assert total(scholarship_award(POLICY, [child], date(2024, 7, 1))) == 87_000_000


def test_two_children_at_most_174_million_and_a_third_gets_nothing() -> None:
    children = [Child(f"child-{n}", date(2020, 1, 10), "TK") for n in range(3)]
    assert total(scholarship_award(POLICY, children, date(2024, 7, 1))) == 174_000_000


def test_the_scholarship_ends_when_the_child_turns_23() -> None:
    # 21 at the claim: two school years start before the 23rd birthday.
    child = Child("child-1", date(2002, 9, 1), "university")
    items = scholarship_award(POLICY, [child], date(2024, 7, 1))
    assert [(i.code, i.school_year, i.amount) for i in items] == [
        ("SCHOLARSHIP_UNIVERSITY", "2024/2025", 12_000_000),
        ("SCHOLARSHIP_UNIVERSITY", "2025/2026", 12_000_000),
    ]


def test_a_child_turning_23_on_the_claim_date_gets_nothing() -> None:
    child = Child("child-1", date(2001, 7, 1), "university")
    assert scholarship_award(POLICY, [child], date(2024, 7, 1)) == []


def test_an_approval_pays_only_the_school_year_that_has_begun() -> None:
    children = [Child("child-1", date(2012, 5, 1), "SMP"), Child("child-2", date(2016, 2, 1), "SD")]
    # 10 June 2025 is in the 2024/2025 school year; 2025/2026 begins in July.
    due, later = scholarship(POLICY, children, date(2025, 6, 10))
    assert [(i.child, i.school_year, i.amount) for i in due] == [
        ("child-1", "2024/2025", 2_000_000),
        ("child-2", "2024/2025", 1_500_000),
    ]
    assert all(i.school_year and i.school_year >= "2025/2026" for i in later)
    assert len({(i.child, i.school_year) for i in due + later}) == len(due + later)


@given(st.integers(1, 60))
def test_incapacity_items_add_up(months: int) -> None:
    items = temporary_incapacity(POLICY, months)
    assert total(items) == min(months, 12) * 1_000_000 + max(0, months - 12) * 500_000


LEVELS = ["TK", "SD", "SMP", "SMA", "university"]
children_lists = st.lists(
    st.tuples(st.dates(date(1995, 1, 1), date(2024, 1, 1)), st.sampled_from(LEVELS)),
    max_size=4,
)


def per_child(items: list, ref: str) -> int:  # type: ignore[type-arg]
    return sum(i.amount for i in items if i.child == ref)


@given(children_lists, st.dates(date(2023, 1, 1), date(2026, 12, 31)))
def test_scholarships_stay_within_the_brief_for_any_children(
    drawn: list[tuple[date, str]], on: date
) -> None:
    children = [Child(f"child-{n}", birth, level) for n, (birth, level) in enumerate(drawn)]
    items = scholarship_award(POLICY, children, on)
    assert total(items) <= 174_000_000
    for n, child in enumerate(children):
        amount = per_child(items, child.ref)
        assert amount <= 87_000_000
        if n >= 2:  # at most two children
            assert amount == 0
        # Born a year earlier, at the same level, never gets more.
        older = Child(child.ref, child.birth_date - timedelta(days=366), child.school_level)
        assert per_child(scholarship_award(POLICY, [older], on), child.ref) <= per_child(
            scholarship_award(POLICY, [child], on), child.ref
        )
