"""What every service's pure domain is made of: the Decider protocol, the events it decides, and
refusals that name every problem at once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeVar
from uuid import UUID

from pydantic import BaseModel


@dataclass(frozen=True)
class Problem:
    """What is wrong with one field of a command, in words its sender can act on."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class RefusedError(Exception):
    """A command the rules refuse, with every reason; ``conflict`` when it clashes with state
    (HTTP 409) rather than being invalid in itself (HTTP 422)."""

    def __init__(self, problems: list[Problem], conflict: bool = False) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems
        self.conflict = conflict


class UnjudgeableError(Exception):
    """A command no rules can judge at all, whatever its fields say (HTTP 422 with the
    sentence): for example, one dated before the first rules came into force."""


@dataclass(frozen=True)
class Decided:
    """An event decided by the domain: its type, data, business time and rules version."""

    event_type: str
    data: BaseModel
    occurred_at: datetime
    policy_version: str | None
    schema_version: int = 1
    worker_id: UUID | None = None  # when the stream's worker is known only from its events
    stream_id: str | None = None  # another stream the decision also writes (None: the command's)


@dataclass(frozen=True)
class Recorded:
    """A stored event as a decider folds it: its data, and when the store recorded it."""

    data: BaseModel
    recorded_at: datetime


CommandT = TypeVar("CommandT", contravariant=True)
StateT = TypeVar("StateT")


class Decider(Protocol[CommandT, StateT]):
    """An aggregate's rules: its state before any event, what a command decides given the
    state, and how each recorded event moves the state on. Pure: the time, identifiers and
    facts from elsewhere come in with the command or the decider's own fields."""

    @property
    def initial(self) -> StateT: ...

    def decide(self, command: CommandT, state: StateT) -> Sequence[Decided]: ...

    def evolve(self, state: StateT, event: Recorded) -> StateT: ...
