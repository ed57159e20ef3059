"""Events owned by the claims service (topic ``<prefix>claims.events``)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal, get_args
from uuid import UUID

from pydantic import Field, model_validator

from contract.events.types import Contract, Rupiah
from shared.bounds import (
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
from shared.sealing import SealedPersonal

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


class ClaimDocuments(Contract):
    """The titles of the documents a claim comes with ("Akta Kematian a.n. ..."): personal by
    nature, so sealed under the worker's key and gone with it."""

    titles: list[str] = Field(default_factory=list, max_length=50)


class ClaimFiled(Contract):
    claim_id: UUID
    worker_id: UUID
    benefit: Literal["JKM", "JKK"]
    kind: Literal["death", "accident", "scholarship"]
    incident_date: date
    claimant: SealedPersonal
    children: SealedPersonal | None = None
    documents: list[Reference] = Field(
        default_factory=list,
        max_length=MAX_DOCUMENTS,
        description="Document titles in clear: only on claims filed before titles were sealed.",
    )
    sealed_documents: SealedPersonal | None = Field(
        default=None, description="The document titles (ClaimDocuments), sealed."
    )
    accident_benefit: (
        Literal["medical", "temporary_incapacity", "total_permanent_disability"] | None
    ) = Field(default=None, description="For a JKK accident that is not a death.")
    months_incapacitated: int | None = Field(default=None, ge=1, le=120)
    medical_costs: Rupiah | None = None


class BenefitItem(Contract):
    code: Code
    amount: Rupiah
    description: Annotated[str, Text(NOTE_CHARS, min_length=0)] = ""
    child: str | None = Field(
        default=None,
        max_length=16,
        description="The child a scholarship instalment is for (child-1, child-2).",
    )
    school_year: str | None = Field(
        default=None,
        pattern=r"^\d{4}/\d{4}$",
        description="The school year a scholarship instalment pays, e.g. 2025/2026.",
    )


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
    open_instalments: list[BenefitItem] = Field(
        default_factory=list,
        max_length=40,
        description="A scholarship award's later school years: not paid with this approval and "
        "not in its total; each is paid once its school year begins.",
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


class ClaimReopened(Contract):
    """A rejection revised on facts another service had recorded before it but claims saw only
    later: by them the claim waits (premiums in arrears, grace), so it is pending again and is
    decided as the missing months are paid."""

    claim_id: UUID
    worker_id: UUID
    policy_note: Decision | None = Field(
        default=None, description="The decision in words a claims officer can read to an heir."
    )


class ScholarshipInstalmentApproved(Contract):
    """A later school year of a scholarship award, paid once: it has begun and the child is
    still eligible (under 23 when it began, neither married nor working)."""

    claim_id: UUID
    worker_id: UUID
    item: BenefitItem


class ClaimPaid(Contract):
    claim_id: UUID
    worker_id: UUID
    amount: Rupiah
    payment_ref: Reference
    paid_on: date
