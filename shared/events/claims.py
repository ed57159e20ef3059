"""Events owned by the claims service (topic ``<prefix>claims.events``)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal, get_args
from uuid import UUID

from pydantic import Field, model_validator

from shared.events.bounds import (
    MAX_BENEFIT_ITEMS,
    MAX_CHILDREN,
    MAX_DOCUMENTS,
    NOTE_CHARS,
    Code,
    Decision,
    Nik,
    PersonName,
    Reference,
    Text,
)
from shared.events.types import Contract, Rupiah, SealedPersonal

ClaimRejectionReason = Literal[
    "not_covered",
    "inactive",
    "lapsed",
    "duplicate_death_claim",
    "insufficient_contributions",
    "not_eligible",
]


class ClaimantPersonal(Contract):
    """The heir who claims, with the bank account the benefit is paid to (sealed)."""

    name: PersonName
    relationship: Literal["spouse", "child", "parent", "sibling", "in_law", "named_in_will", "self"]
    nik: Nik | None = None
    bank_account: Code | None = None


class ChildPersonal(Contract):
    name: PersonName
    birth_date: date
    school_level: Literal["TK", "SD", "SMP", "SMA", "university"]


class ChildrenPersonal(Contract):
    """The deceased worker's children named for a scholarship (sealed, specific personal data)."""

    children: list[ChildPersonal] = Field(default_factory=list, max_length=MAX_CHILDREN)


class ClaimFiled(Contract):
    claim_id: UUID
    worker_id: UUID
    benefit: Literal["JKM", "JKK"]
    kind: Literal["death", "accident", "scholarship"]
    incident_date: date
    claimant: SealedPersonal
    children: SealedPersonal | None = None
    documents: list[Reference] = Field(default_factory=list, max_length=MAX_DOCUMENTS)
    accident_benefit: (
        Literal["medical", "temporary_incapacity", "total_permanent_disability"] | None
    ) = Field(default=None, description="For a JKK accident that is not a death.")
    months_incapacitated: int | None = Field(default=None, ge=1, le=120)
    medical_costs: Rupiah | None = None


class BenefitItem(Contract):
    code: Code
    amount: Rupiah
    description: Annotated[str, Text(NOTE_CHARS, min_length=0)] = ""


class ClaimApproved(Contract):
    claim_id: UUID
    worker_id: UUID
    items: list[BenefitItem] = Field(min_length=1, max_length=MAX_BENEFIT_ITEMS)
    total: Rupiah
    death_date: date | None = Field(
        default=None, description="Set when the claim establishes the worker's death."
    )
    policy_note: Decision | None = Field(
        default=None, description="The decision in words a claims officer can read to an heir."
    )

    @model_validator(mode="after")
    def _total_is_the_sum(self) -> ClaimApproved:
        if sum(item.amount for item in self.items) != self.total:
            raise ValueError("total is not the sum of the items")
        return self


class ClaimRejected(Contract):
    claim_id: UUID
    worker_id: UUID
    reasons: list[ClaimRejectionReason] = Field(
        min_length=1, max_length=len(get_args(ClaimRejectionReason))
    )
    policy_note: Decision | None = Field(
        default=None, description="The decision in words a claims officer can read to an heir."
    )


class ClaimPaid(Contract):
    claim_id: UUID
    worker_id: UUID
    amount: Rupiah
    payment_ref: Reference
    paid_on: date
