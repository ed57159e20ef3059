"""The contract's catalogue: the model of every event type and version, and how old versions
are brought up to date on read.

Every (event type, schema version) ever written has a model here, forever: events already
written are never rewritten. The services hand ``CATALOGUE`` to the platform, which reads
events only through it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from contract.events import billing, claims, enrolment, verification
from shared.catalogue import EventCatalogue, EventType
from shared.envelope import Envelope


def _source_channel_to_object(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "source": {"channel": data["source"], "batch_id": None, "row": None}}


def _single(name: str, owner: str, model: type[BaseModel]) -> EventType:
    return EventType(name, owner, {1: model}, {})


CATALOGUE = EventCatalogue.of(
    (
        EventType(
            "WorkerRegistered",
            "enrolment",
            {1: enrolment.WorkerRegisteredV1, 2: enrolment.WorkerRegistered},
            {1: _source_channel_to_object},
        ),
        _single("WorkerDetailsCorrected", "enrolment", enrolment.WorkerDetailsCorrected),
        _single("CoverageStarted", "enrolment", enrolment.CoverageStarted),
        _single("CoverageEnded", "enrolment", enrolment.CoverageEnded),
        _single("Verified", "verification", verification.Verified),
        _single("VerificationRejected", "verification", verification.VerificationRejected),
        _single("BudgetAllocated", "billing", billing.BudgetAllocated),
        _single("PremiumInvoiced", "billing", billing.PremiumInvoiced),
        _single("InvoiceIssued", "billing", billing.InvoiceIssued),
        _single("NothingInvoiced", "billing", billing.NothingInvoiced),
        _single("PremiumPaid", "billing", billing.PremiumPaid),
        _single("PremiumCancelled", "billing", billing.PremiumCancelled),
        _single("ClaimFiled", "claims", claims.ClaimFiled),
        _single("ClaimApproved", "claims", claims.ClaimApproved),
        _single("ClaimRejected", "claims", claims.ClaimRejected),
        _single("ClaimReopened", "claims", claims.ClaimReopened),
        _single("ClaimPaid", "claims", claims.ClaimPaid),
        _single("ScholarshipInstalmentApproved", "claims", claims.ScholarshipInstalmentApproved),
    )
)
EVENT_TYPES: Mapping[str, EventType] = CATALOGUE.types


def parse(raw: Mapping[str, Any]) -> tuple[Envelope, BaseModel]:
    """A stored or consumed event of the contract: its envelope, and its data at the current
    version."""
    return CATALOGUE.parse(raw)
