"""docs/benefits.md: its worked examples are what the claims rules decide."""

from __future__ import annotations

import pytest

from services.claims.worked_examples import DOCUMENT, render, section

pytestmark = pytest.mark.unit


def test_the_worked_examples_in_the_document_are_the_rules_amounts() -> None:
    assert section(DOCUMENT.read_text()) == render(), (
        "docs/benefits.md differs from the rules: run python -m services.claims.worked_examples"
    )


def test_every_benefit_has_a_worked_example() -> None:
    examples = render()
    for benefit in ("JKM death", "JKK death", "STMB", "disability", "medical", "Beasiswa"):
        assert benefit in examples
    assert "Rp42,000,000" in examples
    assert "Rp70,000,000" in examples
