"""The coverage status of any date, from any valid sequence of coverage and payment events,
as the audit trail folds them, against the rule stated independently, day by day:

- NOT_COVERED outside every coverage (as last ended);
- ACTIVE when the date's month is paid;
- GRACE when one of the three months before it is paid, or the coverage began at most two
  months before it (a new coverage counts as paid the month before it began);
- INACTIVE otherwise;
- arrears: every covered month, up to the date's, not paid."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contract.policy.membership import period_of
from services.audit.history import CoverageTrail

pytestmark = pytest.mark.unit
FIRST = date(2022, 8, 1)


def month_number(day: date) -> int:
    return day.year * 12 + day.month - 1


def period(number: int) -> str:
    return f"{number // 12:04d}-{number % 12 + 1:02d}"


@st.composite
def event_sequences(draw: st.DrawFn) -> tuple[list[tuple[str, dict[str, Any]]], date]:
    """Coverages one after another (a yearly or a 1-3 month cohort, with gaps), some ended
    early; payments of any months; all in any order that keeps an ending after its start."""
    starts_at = FIRST + timedelta(days=draw(st.integers(0, 400)))
    events: list[tuple[float, str, dict[str, Any]]] = []
    windows: list[tuple[date, date]] = []
    for _ in range(draw(st.integers(1, 3))):
        months = draw(st.sampled_from([1, 2, 3, 12]))
        end = date(
            starts_at.year + (starts_at.month - 1 + months) // 12,
            (starts_at.month - 1 + months) % 12 + 1,
            1,
        ) - timedelta(days=1)
        coverage = str(uuid.uuid4())
        windows.append((starts_at, end))
        start_key = draw(st.floats(0, 1))
        events.append(
            (
                start_key,
                "CoverageStarted",
                {
                    "coverage_id": coverage,
                    "start_date": starts_at.isoformat(),
                    "end_date": end.isoformat(),
                },
            )
        )
        if not draw(st.integers(0, 3)):  # now and then ended early (a death)
            ended = starts_at + timedelta(days=draw(st.integers(0, (end - starts_at).days)))
            events.append(
                (
                    start_key + draw(st.floats(0.001, 1)),
                    "CoverageEnded",
                    {"coverage_id": coverage, "end_date": ended.isoformat()},
                )
            )
        starts_at = end + timedelta(days=1 + draw(st.sampled_from([0, 0, 15, 60, 200])))
    for paid in draw(st.sets(st.integers(month_number(FIRST), month_number(FIRST) + 40))):
        events.append((draw(st.floats(0, 2)), "PremiumPaid", {"period": period(paid)}))
    day = FIRST + timedelta(days=draw(st.integers(0, 1300)))
    if windows and draw(st.integers(0, 3)):  # mostly a day inside some coverage
        start, end = draw(st.sampled_from(windows))
        day = start + timedelta(days=draw(st.integers(0, (end - start).days)))
    return [(kind, data) for _, kind, data in sorted(events, key=lambda e: e[0])], day


def expected_status(events: list[tuple[str, dict[str, Any]]], day: date) -> tuple[str, set[str]]:
    windows: dict[str, tuple[date, date]] = {}
    for kind, data in events:
        if kind == "CoverageStarted":
            windows[data["coverage_id"]] = (
                date.fromisoformat(data["start_date"]),
                date.fromisoformat(data["end_date"]),
            )
    for kind, data in events:  # an ending applies whenever it is read, after its start
        if kind == "CoverageEnded":
            start, _ = windows[data["coverage_id"]]
            windows[data["coverage_id"]] = (start, date.fromisoformat(data["end_date"]))
    paid = {data["period"] for kind, data in events if kind == "PremiumPaid"}
    arrears = set()
    for start, end in windows.values():
        covered = start
        while covered <= min(end, day):
            if period_of(covered) not in paid:
                arrears.add(period_of(covered))
            covered += timedelta(days=1)
    covering = [start for start, end in windows.values() if start <= day <= end]
    if not covering:
        return "NOT_COVERED", arrears
    month = month_number(day)
    if period(month) in paid:
        return "ACTIVE", arrears
    recently_paid = any(period(month - back) in paid for back in (1, 2, 3))
    recently_began = month_number(covering[0]) >= month - 2
    return ("GRACE" if recently_paid or recently_began else "INACTIVE"), arrears


@given(event_sequences())
def test_status_of_any_date_from_any_event_sequence(
    sequence: tuple[list[tuple[str, dict[str, Any]]], date],
) -> None:
    events, day = sequence
    trail = CoverageTrail()
    for kind, data in events:
        trail.apply(kind, data)
    standing = trail.standing(day)
    status, arrears = expected_status(events, day)
    assert standing.status == status
    assert set(standing.arrears) == arrears
