"""Arrears and membership status from covered and paid months (BPJS rules for informal
participants).

On a date, a worker is
- ACTIVE when the month containing the date is paid;
- GRACE when it is not, but the last paid month is at most ``grace_months`` (3) months before
  it: premiums unpaid for up to 3 months after the last paid month;
- INACTIVE beyond that.
A coverage that has not had a paid month yet counts from the month before it started, so a new
member is in grace during their first 3 months, not inactive.
Only covered months matter: a date outside coverage is NOT_COVERED.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Literal

Status = Literal["ACTIVE", "GRACE", "INACTIVE", "NOT_COVERED"]


def period_of(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def month_index(period: str) -> int:
    year, month = period.split("-")
    return int(year) * 12 + int(month) - 1


def periods_between(start: date, end: date) -> list[str]:
    """Every month with at least one day in [start, end]."""
    first, last = start.year * 12 + start.month - 1, end.year * 12 + end.month - 1
    return [f"{i // 12:04d}-{i % 12 + 1:02d}" for i in range(first, last + 1)]


@dataclass(frozen=True)
class Standing:
    status: Status
    arrears: tuple[str, ...]  # covered months up to the date, not paid
    last_paid: str | None


def standing_on(
    day: date,
    covered: Iterable[tuple[date, date]],
    paid: Iterable[str],
    grace_months: int = 3,
) -> Standing:
    """The worker's status on ``day`` from coverage periods and the months paid so far."""
    periods = sorted(covered)
    covering = [p for p in periods if p[0] <= day <= p[1]]
    paid_months = set(paid)
    current = period_of(day)
    owed = [
        month
        for start, end in periods
        for month in periods_between(start, min(end, day))
        if start <= day and month not in paid_months
    ]
    paid_before = sorted(m for m in paid_months if month_index(m) <= month_index(current))
    last_paid = paid_before[-1] if paid_before else None
    if not covering:
        return Standing("NOT_COVERED", tuple(owed), last_paid)
    if current in paid_months:
        return Standing("ACTIVE", tuple(owed), last_paid)
    start = covering[0][0]
    reference = (
        month_index(last_paid)
        if last_paid is not None and month_index(last_paid) >= month_index(period_of(start)) - 1
        else month_index(period_of(start)) - 1
    )
    status: Status = "GRACE" if month_index(current) - reference <= grace_months else "INACTIVE"
    return Standing(status, tuple(owed), last_paid)
