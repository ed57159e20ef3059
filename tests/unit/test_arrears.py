"""Membership status on a date from covered and paid months."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contract.policy.membership import periods_between, standing_on

pytestmark = pytest.mark.unit
YEAR = [(date(2024, 1, 1), date(2024, 12, 31))]


def test_a_paid_month_is_active() -> None:
    assert (
        standing_on(date(2024, 3, 15), YEAR, ["2024-01", "2024-02", "2024-03"]).status == "ACTIVE"
    )


def test_the_first_day_after_the_last_paid_month_is_grace() -> None:
    standing = standing_on(date(2024, 2, 1), YEAR, ["2024-01"])
    assert standing.status == "GRACE"
    assert standing.arrears == ("2024-02",)


def test_grace_lasts_three_months_after_the_last_paid_month() -> None:
    assert standing_on(date(2024, 4, 30), YEAR, ["2024-01"]).status == "GRACE"
    inactive = standing_on(date(2024, 5, 1), YEAR, ["2024-01"])
    assert inactive.status == "INACTIVE"
    assert inactive.arrears == ("2024-02", "2024-03", "2024-04", "2024-05")


def test_a_new_member_is_in_grace_before_the_first_payment() -> None:
    assert standing_on(date(2024, 1, 20), YEAR, []).status == "GRACE"
    assert standing_on(date(2024, 3, 31), YEAR, []).status == "GRACE"
    assert standing_on(date(2024, 4, 1), YEAR, []).status == "INACTIVE"


def test_paying_late_january_later_turns_it_paid_from_then_on() -> None:
    before = standing_on(date(2024, 1, 25), YEAR, [])
    after = standing_on(date(2024, 1, 25), YEAR, ["2024-01"])
    assert before.arrears == ("2024-01",)
    assert after.status == "ACTIVE"
    assert after.arrears == ()


def test_outside_coverage_is_not_covered() -> None:
    assert standing_on(date(2025, 1, 1), YEAR, ["2024-12"]).status == "NOT_COVERED"


def test_the_last_day_of_coverage_is_still_covered() -> None:
    assert standing_on(date(2024, 12, 31), YEAR, ["2024-12"]).status == "ACTIVE"


def test_periods_cover_every_month_touched() -> None:
    assert periods_between(date(2024, 11, 15), date(2025, 2, 14)) == [
        "2024-11",
        "2024-12",
        "2025-01",
        "2025-02",
    ]


@given(st.sets(st.integers(1, 12)), st.integers(1, 12), st.integers(1, 28))
def test_status_follows_the_rule_for_any_payments(paid: set[int], month: int, day: int) -> None:
    months = [f"2024-{m:02d}" for m in sorted(paid)]
    standing = standing_on(date(2024, month, day), YEAR, months)
    before = [m for m in paid if m <= month]
    gap = month - (max(before) if before else 0)
    expected = "ACTIVE" if month in paid else ("GRACE" if gap <= 3 else "INACTIVE")
    assert standing.status == expected
    assert len(standing.arrears) == month - len(before)
