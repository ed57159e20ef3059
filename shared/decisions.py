"""What every service's pure domain returns or raises: decided events, and refusals that name
every problem at once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel

from shared.policy.eligibility import Problem


class RefusedError(Exception):
    """A command the rules refuse, with every reason; ``conflict`` when it clashes with state
    (HTTP 409) rather than being invalid in itself (HTTP 422)."""

    def __init__(self, problems: list[Problem], conflict: bool = False) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems
        self.conflict = conflict


@dataclass(frozen=True)
class Decided:
    """An event decided by the domain: its type, data, business time and rules version."""

    event_type: str
    data: BaseModel
    occurred_at: datetime
    policy_version: str | None
    schema_version: int = 1
