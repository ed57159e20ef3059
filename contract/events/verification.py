"""Events owned by the verification service (topic ``<prefix>verification.events``)."""

from __future__ import annotations

from datetime import date
from typing import Literal, get_args
from uuid import UUID

from pydantic import Field, model_validator

from contract.events.types import Cohort, Contract, FiscalYear
from shared.bounds import Note, Reference

Level = Literal["kelurahan", "kecamatan", "city"]
RejectionReason = Literal[
    "not_eligible_age",
    "occupation_not_in_catalogue",
    "not_resident",
    "duplicate_person",
    "already_covered",
    "documents_incomplete",
    "other",
]


class Verified(Contract):
    """A verification step passed; at ``city`` level it is the designation into a cohort."""

    worker_id: UUID
    case_id: UUID
    level: Level
    note: Note | None = None
    cohort: Cohort | None = None
    cover_months: int | None = Field(default=None, ge=1, le=12)
    coverage_start: date | None = None
    fiscal_year: FiscalYear | None = None
    decree_ref: Reference | None = None

    @model_validator(mode="after")
    def _designation_fields_only_at_city_level(self) -> Verified:
        designation = (
            self.cohort,
            self.cover_months,
            self.coverage_start,
            self.fiscal_year,
            self.decree_ref,
        )
        if self.level == "city" and any(value is None for value in designation):
            raise ValueError(
                "a city-level designation needs cohort, cover_months, coverage_start, "
                "fiscal_year and decree_ref"
            )
        if self.level != "city" and any(value is not None for value in designation):
            raise ValueError(f"designation fields belong to the city level, not {self.level}")
        return self


class VerificationRejected(Contract):
    worker_id: UUID
    case_id: UUID
    level: Level
    reasons: list[RejectionReason] = Field(min_length=1, max_length=len(get_args(RejectionReason)))
    note: Note | None = None

    @model_validator(mode="after")
    def _other_needs_a_note(self) -> VerificationRejected:
        if "other" in self.reasons and not self.note:
            raise ValueError("reason 'other' needs a note")
        return self
