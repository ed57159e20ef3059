"""The claim filing form: what an officer typed, kept to draw the form again, and the claims
service's request made from it (the JKK accident's benefit, months and costs; the children a
scholarship is for)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.datastructures import FormData

from services.console.typed import iso_date, rupiahs

TEXT_FIELDS = (
    "worker_id",
    "benefit",
    "kind",
    "incident_date",
    "claimant_name",
    "relationship",
    "bank_account",
    "accident_benefit",
    "months_incapacitated",
    "medical_costs",
)
# The children a scholarship is for: the service pays for two at the most.
CHILD_ROWS = 2
CHILD_FIELDS = ("name", "birth_date", "school_level")
# Where each field the service names is drawn on the form.
FIELD_OF: Mapping[str, str] = {
    **{name: name for name in TEXT_FIELDS},
    "claimant.name": "claimant_name",
    "claimant.relationship": "relationship",
    "claimant.bank_account": "bank_account",
    **{
        f"children.{row}.{field}": f"child-{row + 1}-{field}"
        for row in range(CHILD_ROWS)
        for field in CHILD_FIELDS
    },
}


def typed_values(form: FormData, documents: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {n: str(form.get(n, ""))[:200].strip() for n in TEXT_FIELDS}
    for row in range(1, CHILD_ROWS + 1):
        for field in CHILD_FIELDS:
            name = f"child-{row}-{field}"
            values[name] = str(form.get(name, ""))[:200].strip()
    values["documents"] = [str(d) for d in form.getlist("documents")[:20] if str(d) in documents]
    return values


def claim_request(values: Mapping[str, Any]) -> dict[str, Any]:
    """The claims service's request; a field left empty is left out, for the service to say
    whether the claim needs it."""
    body: dict[str, Any] = {
        "worker_id": values["worker_id"],
        "benefit": values["benefit"],
        "kind": values["kind"],
        "incident_date": iso_date(values["incident_date"]),
        "claimant": {
            "name": values["claimant_name"],
            "relationship": values["relationship"],
            "bank_account": values["bank_account"] or None,
        },
        "documents": values["documents"],
    }
    if values["accident_benefit"]:
        body["accident_benefit"] = values["accident_benefit"]
    if values["months_incapacitated"]:
        months = values["months_incapacitated"]
        body["months_incapacitated"] = int(months) if months.isdigit() else months
    if values["medical_costs"]:
        body["medical_costs"] = rupiahs(values["medical_costs"])
    children = [
        {
            "name": values[f"child-{row}-name"],
            "birth_date": iso_date(values[f"child-{row}-birth_date"]),
            "school_level": values[f"child-{row}-school_level"],
        }
        for row in range(1, CHILD_ROWS + 1)
        if values[f"child-{row}-name"]
    ]
    if children:
        body["children"] = children
    return body
