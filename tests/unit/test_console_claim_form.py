"""The claim filing form as the claims service reads it: a work accident's benefit, months and
costs as typed, the children a scholarship is for, and nothing sent for a field left empty."""

from __future__ import annotations

import pytest
from starlette.datastructures import FormData

from services.console.app import CLAIM_DOCUMENTS
from services.console.claim_form import FIELD_OF, claim_request, typed_values

pytestmark = pytest.mark.unit
WORKER = "6f1c1f8e-0c39-4a4b-9a43-2b8f4c1d2e3f"
HEIR = {"claimant_name": "Budi Santoso", "relationship": "spouse", "bank_account": ""}


def test_a_work_accident_sends_its_benefit_months_and_costs_as_typed() -> None:
    form = FormData(
        {
            "worker_id": WORKER,
            "benefit": "JKK",
            "kind": "accident",
            "incident_date": "3-2-2025",
            "accident_benefit": "temporary_incapacity",
            "months_incapacitated": "14",
            "medical_costs": "Rp2.500.000",
            **HEIR,
        }
    )
    body = claim_request(typed_values(form, CLAIM_DOCUMENTS))
    assert body["incident_date"] == "2025-02-03"
    assert body["accident_benefit"] == "temporary_incapacity"
    assert body["months_incapacitated"] == 14
    assert body["medical_costs"] == 2_500_000
    assert "children" not in body
    assert body["claimant"] == {
        "name": "Budi Santoso",
        "relationship": "spouse",
        "bank_account": None,
    }


def test_a_scholarship_sends_the_children_named_and_leaves_out_the_empty_row() -> None:
    form = FormData(
        [
            ("worker_id", WORKER),
            ("benefit", "JKM"),
            ("kind", "scholarship"),
            ("incident_date", "01-08-2025"),
            ("child-1-name", "Rina"),
            ("child-1-birth_date", "02-05-2012"),
            ("child-1-school_level", "SMP"),
            ("child-2-name", ""),
            ("child-2-school_level", "TK"),
            ("documents", "akta kematian"),
            ("documents", "not a document we know"),
            *HEIR.items(),
        ]
    )
    values = typed_values(form, CLAIM_DOCUMENTS)
    body = claim_request(values)
    assert body["children"] == [{"name": "Rina", "birth_date": "2012-05-02", "school_level": "SMP"}]
    assert body["documents"] == ["akta kematian"]
    assert not {"accident_benefit", "months_incapacitated", "medical_costs"} & set(body)


def test_a_months_field_that_is_no_number_goes_to_the_service_to_be_named() -> None:
    form = FormData({"months_incapacitated": "dua", **HEIR})
    assert claim_request(typed_values(form, CLAIM_DOCUMENTS))["months_incapacitated"] == "dua"


def test_the_services_field_names_are_drawn_beside_their_fields() -> None:
    assert FIELD_OF["children.1.birth_date"] == "child-2-birth_date"
    assert FIELD_OF["claimant.bank_account"] == "bank_account"
    assert FIELD_OF["medical_costs"] == "medical_costs"
