"""The envelope every event travels in (the contract's "Envelope" table)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

GENESIS_HASH = "0" * 64

Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class Actor(BaseModel):
    """Who caused the event: a user with a role, or ``system`` for automatic steps."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1)
    role: str = Field(min_length=1)


class Envelope(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: UUID
    event_type: str = Field(min_length=1)
    schema_version: int = Field(ge=1)
    stream_id: str = Field(min_length=1)
    stream_version: int = Field(ge=1)
    worker_id: UUID | None
    occurred_at: AwareDatetime
    recorded_at: AwareDatetime
    producer: str = Field(min_length=1)
    actor: Actor
    correlation_id: UUID
    causation_id: UUID | None
    policy_version: str | None
    prev_hash: Sha256Hex
    hash: Sha256Hex
    data: dict[str, Any]

    @property
    def recorded(self) -> datetime:
        return self.recorded_at
