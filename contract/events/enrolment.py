"""Events owned by the enrolment service (topic ``<prefix>enrolment.events``)."""

from __future__ import annotations

from datetime import date
from typing import Literal, get_args
from uuid import UUID

from pydantic import Field, model_validator

from contract.events.types import (
    Cohort,
    Contract,
    FiscalYear,
    KecamatanCode,
    KelurahanCode,
    MembershipNo,
    Premium,
    Programme,
    Rupiah,
    Sex,
)
from shared.bounds import (
    MAX_HEIRS,
    Address,
    Code,
    Nik,
    PersonName,
    Phone,
    Reason,
    Reference,
)
from shared.sealing import SealedPersonal


class Heir(Contract):
    """An heir (ahli waris): spouse and children first, then parents, siblings, in-laws, will."""

    name: PersonName
    relationship: Literal["spouse", "child", "parent", "sibling", "in_law", "named_in_will"]
    nik: Nik | None = None


class WorkerPersonal(Contract):
    """The personal part of a registration: travels only sealed (see shared.sealing)."""

    nik: Nik
    full_name: PersonName
    address: Address
    phone: Phone | None = None
    heirs: list[Heir] = Field(default_factory=list, max_length=MAX_HEIRS)


class RegistrationSource(Contract):
    channel: Literal["api", "import"]
    batch_id: Code | None = Field(
        default=None, description="Import batch (file digest) if imported"
    )
    row: int | None = Field(default=None, ge=1, description="Row of the imported file")


class WorkerRegisteredV1(Contract):
    """Version 1: ``source`` was only the channel name."""

    worker_id: UUID
    personal: SealedPersonal
    birth_date: date
    sex: Sex
    occupation_code: Code
    kelurahan_code: KelurahanCode
    kecamatan_code: KecamatanCode
    insured_income: Rupiah
    source: Literal["api", "import"]


class WorkerRegistered(Contract):
    """Version 2: ``source`` names the import batch and row, so a re-import is recognised."""

    worker_id: UUID
    personal: SealedPersonal
    birth_date: date
    sex: Sex
    occupation_code: Code
    kelurahan_code: KelurahanCode
    kecamatan_code: KecamatanCode
    insured_income: Rupiah
    source: RegistrationSource


class WorkerDetailsCorrected(Contract):
    worker_id: UUID
    reason: Reason
    personal: SealedPersonal | None = None
    birth_date: date | None = None
    sex: Sex | None = None
    occupation_code: Code | None = None
    kelurahan_code: KelurahanCode | None = None
    kecamatan_code: KecamatanCode | None = None


class CoverageStarted(Contract):
    worker_id: UUID
    coverage_id: UUID
    membership_no: MembershipNo
    cohort: Cohort
    fiscal_year: FiscalYear
    programmes: list[Programme] = Field(min_length=1, max_length=len(get_args(Programme)))
    start_date: date
    end_date: date
    monthly_premium: Premium
    insured_income: Rupiah
    decree_ref: Reference

    @model_validator(mode="after")
    def _period_is_ordered(self) -> CoverageStarted:
        if self.end_date < self.start_date:
            raise ValueError(f"end_date {self.end_date} is before start_date {self.start_date}")
        return self


class CoverageEnded(Contract):
    worker_id: UUID
    coverage_id: UUID
    end_date: date
    reason: Literal["expired", "deceased", "age_limit", "withdrawn"]
