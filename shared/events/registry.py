"""Which model reads which event, and how old versions are brought up to date on read.

Every (event type, schema version) ever written has a model here, forever: events already
written are never rewritten. Consumers always see the current version: older data is upcast
step by step (v1 -> v2 -> ...) before validation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from shared.envelope import Envelope
from shared.events import billing, claims, enrolment, verification

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


class UnknownEventError(ValueError):
    """The event type, or that version of it, is not in the contract this code knows."""


class InvalidEventError(ValueError):
    """The envelope or its data does not match the contract."""


@dataclass(frozen=True)
class EventType:
    name: str
    owner: str
    versions: Mapping[int, type[BaseModel]]
    upcasters: Mapping[int, Upcaster]  # from version N to N + 1

    @property
    def current_version(self) -> int:
        return max(self.versions)

    @property
    def model(self) -> type[BaseModel]:
        return self.versions[self.current_version]


def _source_channel_to_object(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "source": {"channel": data["source"], "batch_id": None, "row": None}}


def _single(name: str, owner: str, model: type[BaseModel]) -> EventType:
    return EventType(name, owner, {1: model}, {})


EVENT_TYPES: dict[str, EventType] = {
    event.name: event
    for event in (
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
        _single("PremiumPaid", "billing", billing.PremiumPaid),
        _single("PremiumCancelled", "billing", billing.PremiumCancelled),
        _single("ClaimFiled", "claims", claims.ClaimFiled),
        _single("ClaimApproved", "claims", claims.ClaimApproved),
        _single("ClaimRejected", "claims", claims.ClaimRejected),
        _single("ClaimReopened", "claims", claims.ClaimReopened),
        _single("ClaimPaid", "claims", claims.ClaimPaid),
        _single("ScholarshipInstalmentApproved", "claims", claims.ScholarshipInstalmentApproved),
    )
}


def event_type(name: str) -> EventType:
    try:
        return EVENT_TYPES[name]
    except KeyError:
        raise UnknownEventError(f"unknown event type {name!r}") from None


def current_version(name: str) -> int:
    return event_type(name).current_version


def upcast(name: str, version: int, data: dict[str, Any]) -> dict[str, Any]:
    """``data`` of ``name`` at ``version``, brought to the current version."""
    kind = event_type(name)
    if version not in kind.versions:
        raise UnknownEventError(
            f"{name} has no schema version {version} (known: {sorted(kind.versions)})"
        )
    while version < kind.current_version:
        data = kind.upcasters[version](data)
        version += 1
    return data


def _describe(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in problem['loc']) or '(root)'}: {problem['msg']}"
        for problem in error.errors()
    )


def parse_envelope(raw: Mapping[str, Any]) -> Envelope:
    """Validate an envelope, ignoring fields a newer producer may have added to it."""
    try:
        return Envelope.model_validate(raw, extra="ignore")
    except ValidationError as error:
        raise InvalidEventError(
            f"envelope does not match the contract: {_describe(error)}"
        ) from None


def parse_data(envelope: Envelope) -> BaseModel:
    """The envelope's data at the current version of its type.

    A tolerant reader: fields this code does not know (a newer producer's new optional fields)
    are ignored, at every depth. Producers stay strict: the models refuse unknown fields when
    an event is built, so nothing unknown is ever written by this code.
    """
    data = upcast(envelope.event_type, envelope.schema_version, dict(envelope.data))
    model = event_type(envelope.event_type).model
    try:
        return model.model_validate(data, extra="ignore")
    except ValidationError as error:
        raise InvalidEventError(
            f"{envelope.event_type} v{envelope.schema_version} data does not match the "
            f"contract: {_describe(error)}"
        ) from None


def parse(raw: Mapping[str, Any]) -> tuple[Envelope, BaseModel]:
    """Validate an envelope and its data; the data is returned at the current version."""
    envelope = parse_envelope(raw)
    return envelope, parse_data(envelope)
