"""Benefit amounts, item by item, from the policy in force (brief, section 3).

Every function returns the items a decision lists: a code, an amount in whole rupiah, and a
sentence a claims officer can read to an heir.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from shared.policy import Policy
from shared.policy.eligibility import age_on


@dataclass(frozen=True)
class Item:
    code: str
    amount: int
    description: str


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


def scholarship(policy: Policy, children: list[Child], on: date) -> list[Item]:
    """Per child (at most two), every school year from the current level on, each year starting
    before the child turns 23, at most the schedule's years per level."""
    b = policy.benefits
    levels = [s.level for s in b.scholarship_schedule]
    items = []
    for child in children[: b.scholarship_max_children]:
        if child.school_level not in levels:
            raise ValueError(f"unknown school level {child.school_level!r}; known: {levels}")
        year = 0
        for level in b.scholarship_schedule[levels.index(child.school_level) :]:
            years = 0
            for _ in range(level.max_years):
                start = date(on.year + year, on.month, min(on.day, 28))
                if age_on(child.birth_date, start) >= b.scholarship_age_limit:
                    break
                years += 1
                year += 1
            if years:
                amount = years * level.per_year
                items.append(
                    Item(
                        f"SCHOLARSHIP_{level.level.upper()}",
                        amount,
                        f"Scholarship for {child.ref}: {years} school years of {level.level} at "
                        f"{rupiah(level.per_year)} a year = {rupiah(amount)}.",
                    )
                )
    return items
