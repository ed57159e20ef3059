"""Claims' refusals (malformed claims, impossible payments): every reason at once."""

from __future__ import annotations


class RefusedError(Exception):
    def __init__(self, problems: list[str], conflict: bool = False) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems
        self.conflict = conflict
