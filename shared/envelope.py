"""The envelope every event travels in (the contract's "Envelope" table)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from shared.bounds import Code, Reference

GENESIS_HASH = "0" * 64

Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class Actor(BaseModel):
    """Who caused the event: a user with a role, or ``system`` for automatic steps."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: Reference
    role: Code


class Envelope(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: UUID
    event_type: Code
    schema_version: int = Field(ge=1)
    stream_id: Reference
    stream_version: int = Field(ge=1)
    worker_id: UUID | None
    occurred_at: AwareDatetime
    recorded_at: AwareDatetime
    producer: Code
    actor: Actor
    correlation_id: UUID
    causation_id: UUID | None
    policy_version: Code | None
    prev_hash: Sha256Hex
    hash: Sha256Hex
    data: dict[str, Any]

    @property
    def recorded(self) -> datetime:
        return self.recorded_at
