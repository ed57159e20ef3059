"""The committed OpenAPI and AsyncAPI documents are what the code generates."""

from __future__ import annotations

import pytest

from services.specs import DOCS, documents, render

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("name", sorted(documents()))
def test_committed_document_matches_the_code(name: str) -> None:
    committed = DOCS / name
    assert committed.exists(), f"{name} missing: run python -m services.specs"
    assert committed.read_text() == render(documents()[name]), (
        f"{name} differs from the code: run python -m services.specs"
    )
