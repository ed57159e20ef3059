"""Billing's refusals: every reason at once, field by field."""

from __future__ import annotations

from shared.policy.eligibility import Problem


class RefusedError(Exception):
    def __init__(self, problems: list[Problem], conflict: bool = False) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems
        self.conflict = conflict
