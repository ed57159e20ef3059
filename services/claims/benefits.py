"""Benefit amounts, item by item, from the policy in force (brief, section 3).

Every function returns the items a decision lists: a code, an amount in whole rupiah, and a
sentence a claims officer can read to an heir.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from contract.policy import Policy
from contract.policy.eligibility import age_on


@dataclass(frozen=True)
class Item:
    code: str
    amount: int
    description: str
    child: str | None = None  # the child a scholarship instalment is for
    school_year: str | None = None  # its school year, "2025/2026"


def rupiah(amount: int) -> str:
    return f"Rp{amount:,}"


def jkm_death(policy: Policy) -> list[Item]:
    b = policy.benefits
    periodic = b.jkm_periodic_months * b.jkm_periodic_monthly
    return [
        Item(
            "JKM_LUMP_SUM", b.jkm_lump_sum, f"Death benefit paid at once: {rupiah(b.jkm_lump_sum)}."
        ),
        Item(
            "JKM_PERIODIC",
            periodic,
            f"Periodic benefit, {b.jkm_periodic_months} months x {rupiah(b.jkm_periodic_monthly)}, "
            f"paid at once: {rupiah(periodic)}.",
        ),
        Item("FUNERAL", b.funeral, f"Funeral costs: {rupiah(b.funeral)}."),
    ]


def jkk_death(policy: Policy) -> list[Item]:
    b = policy.benefits
    income = policy.insured_income
    death = max(b.jkk_death_income_multiple * income, b.jkk_death_minimum)
    return [
        Item(
            "JKK_DEATH",
            death,
            f"Work-accident death: {b.jkk_death_income_multiple} x insured income "
            f"{rupiah(income)}, at least {rupiah(b.jkk_death_minimum)}: {rupiah(death)}.",
        ),
        Item("FUNERAL", b.funeral, f"Funeral costs: {rupiah(b.funeral)}."),
        Item(
            "JKK_PERIODIC",
            b.jkk_periodic,
            f"Periodic benefit paid at once: {rupiah(b.jkk_periodic)}.",
        ),
    ]


def temporary_incapacity(policy: Policy, months: int) -> list[Item]:
    b = policy.benefits
    income = policy.insured_income
    full = min(months, b.incapacity_full_months)
    reduced = max(0, months - b.incapacity_full_months)
    items = [
        Item(
            "STMB_FULL",
            full * income,
            f"Temporary incapacity, {full} months at 100% of insured income {rupiah(income)}.",
        )
    ]
    if reduced:
        amount = reduced * income * b.incapacity_after_percent // 100
        items.append(
            Item(
                "STMB_REDUCED",
                amount,
                f"Temporary incapacity after {b.incapacity_full_months} months, {reduced} months "
                f"at {b.incapacity_after_percent}% of insured income: {rupiah(amount)}.",
            )
        )
    return items


def total_permanent_disability(policy: Policy) -> list[Item]:
    b = policy.benefits
    amount = b.disability_income_multiple_tenths * policy.insured_income // 10
    return [
        Item(
            "DISABILITY_TOTAL",
            amount,
            f"Total permanent disability: 70% x 80 x insured income {rupiah(policy.insured_income)}"
            f" = {rupiah(amount)}.",
        ),
        Item(
            "JKK_PERIODIC",
            b.jkk_periodic,
            f"Periodic benefit paid at once: {rupiah(b.jkk_periodic)}.",
        ),
    ]


def medical(costs: int) -> list[Item]:
    return [Item("MEDICAL", costs, f"Medical care as needed, no cap: {rupiah(costs)}.")]


@dataclass(frozen=True)
class Child:
    ref: str  # a reference that carries no personal data, e.g. "child-1"
    birth_date: date
    school_level: str


SCHOOL_YEAR_STARTS = (7, 1)  # the Indonesian school year (tahun ajaran) begins in July


def school_year_of(day: date) -> int:
    """The first calendar year of the school year in progress on ``day``."""
    return day.year if (day.month, day.day) >= SCHOOL_YEAR_STARTS else day.year - 1


def school_year_start(first_year: int) -> date:
    return date(first_year, *SCHOOL_YEAR_STARTS)


def scholarship_award(policy: Policy, children: list[Child], on: date) -> list[Item]:
    """The whole award: one instalment per child (at most two) per school year, from the school
    year in progress on ``on`` and the child's current level on, each school year beginning
    before the child turns 23, at most the schedule's years per level."""
    b = policy.benefits
    levels = [s.level for s in b.scholarship_schedule]
    first_year = school_year_of(on)
    items = []
    for child in children[: b.scholarship_max_children]:
        if child.school_level not in levels:
            raise ValueError(f"unknown school level {child.school_level!r}; known: {levels}")
        year = first_year
        for level in b.scholarship_schedule[levels.index(child.school_level) :]:
            for _ in range(level.max_years):
                if age_on(child.birth_date, school_year_start(year)) >= b.scholarship_age_limit:
                    break
                school_year = f"{year}/{year + 1}"
                items.append(
                    Item(
                        f"SCHOLARSHIP_{level.level.upper()}",
                        level.per_year,
                        f"Scholarship for {child.ref}, school year {school_year} "
                        f"({level.level}): {rupiah(level.per_year)}.",
                        child=child.ref,
                        school_year=school_year,
                    )
                )
                year += 1
    return items


def scholarship(policy: Policy, children: list[Child], on: date) -> tuple[list[Item], list[Item]]:
    """The award split on ``on``: the instalments due (their school year has begun: paid with
    the approval) and those still open (each paid once its school year begins, if the child is
    still eligible then)."""
    award = scholarship_award(policy, children, on)
    begun = school_year_of(on)
    due = [i for i in award if int((i.school_year or "0/").split("/")[0]) <= begun]
    return due, [i for i in award if i not in due]
