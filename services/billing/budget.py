"""The city's budget for the programme: allocations per fiscal year, source and cohort.

``decide_allocation`` is pure; the report adds what the other services' events commit and
what billing invoiced and received.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from contract.events.billing import BudgetAllocated
from contract.policy import PolicyBook
from shared.business_calendar import business_day
from shared.decisions import Decided, Problem, Recorded, RefusedError


@dataclass(frozen=True)
class AllocateBudget:
    fiscal_year: int
    source: Literal["APBD", "APBD-P"]
    cohort: Literal["regular", "incidental"]
    amount: int
    at: datetime


def decide_allocation(command: AllocateBudget) -> BudgetAllocated:
    problems = []
    if command.amount <= 0:
        problems.append(Problem("amount", "an allocation is a positive number of rupiah"))
    if command.fiscal_year < 2022:
        problems.append(Problem("fiscal_year", "the programme started in fiscal year 2022"))
    if problems:
        raise RefusedError(problems)
    return BudgetAllocated(
        fiscal_year=command.fiscal_year,
        source=command.source,
        amount=command.amount,
        cohort=command.cohort,
    )


@dataclass(frozen=True)
class BudgetRules:
    """A fiscal year's allocations as a Decider (one stream per year, in the city's order)."""

    book: PolicyBook
    initial: int = 0  # allocations so far

    def decide(self, command: AllocateBudget, allocations: int) -> list[Decided]:
        policy = self.book.in_force(business_day(command.at))
        return [Decided("BudgetAllocated", decide_allocation(command), command.at, policy.version)]

    def evolve(self, allocations: int, event: Recorded) -> int:
        return allocations + 1
