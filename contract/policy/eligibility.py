"""Eligibility rules shared by the services that judge a worker: age on a date, and the age
limit of coverage. Problems are field-level, so every reason reaches the user at once."""

from __future__ import annotations

import calendar
from datetime import date

from contract.policy import Policy
from shared.decisions import Problem


def age_on(birth_date: date, day: date) -> int:
    """Age in whole years; someone born on 29 February has their birthday on 1 March in
    common years (the day after 28 February)."""
    had_birthday = (day.month, day.day) >= (birth_date.month, birth_date.day)
    return day.year - birth_date.year - (0 if had_birthday else 1)


def check_age(
    birth_date: date, on: date, policy: Policy, field: str = "birth_date"
) -> list[Problem]:
    age = age_on(birth_date, on)
    if not policy.min_age <= age <= policy.max_age:
        return [
            Problem(
                field,
                f"age {age} on {on.isoformat()} is outside {policy.min_age} to {policy.max_age}",
            )
        ]
    return []


def coverage_age_limit_end(birth_date: date, limit_age: int) -> date:
    """The last day of the month in which the worker turns ``limit_age`` (66)."""
    year = birth_date.year + limit_age
    month = birth_date.month
    return date(year, month, calendar.monthrange(year, month)[1])
