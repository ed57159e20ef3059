"""Free text kept in clear never carries a NIK-like number."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from contract.policy.freetext import without_personal_numbers
from services.enrolment.api import CorrectionRequest, WithdrawalRequest
from services.verification.api import RejectRequest

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "text",
    [
        "salah NIK 3375010101800001",
        "3375 0101 0180 0001 keliru",
        "NIK 33.75.01.0101.800001",
        "３３７５０１０１０１８０００１２",  # full-width digits
    ],
)
def test_a_nik_like_number_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="NIK-like"):
        without_personal_numbers(text)


def test_other_numbers_pass() -> None:
    text = "SK 400/77/2024, RT 003 RW 005, 12 months, phone 0812 3456 7890"
    assert without_personal_numbers(text) == text


def test_reasons_and_notes_with_a_nik_are_refused_naming_the_field() -> None:
    with pytest.raises(ValidationError) as correction:
        CorrectionRequest(reason="NIK lama 3375010101800001 salah ketik")
    assert correction.value.errors()[0]["loc"] == ("reason",)
    with pytest.raises(ValidationError) as withdrawal:
        WithdrawalRequest.model_validate({"end_date": "2025-03-31", "note": "3375010101800001"})
    assert withdrawal.value.errors()[0]["loc"] == ("note",)
    with pytest.raises(ValidationError) as rejection:
        RejectRequest.model_validate({"reasons": ["other"], "note": "NIK 3375010101800001"})
    assert rejection.value.errors()[0]["loc"] == ("note",)
