"""Every state-changing operation in the committed OpenAPI documents has its entry in the table
of operations retried under a key (``tests.integration.retried_operations``), and documents the
Idempotency-Key it is retried under: a new operation is placed in the table before it ships."""

from __future__ import annotations

import json

import pytest

from services.specs import DOCS
from tests.integration.retried_operations import OPERATIONS

pytestmark = pytest.mark.unit
STATE_CHANGING = {"post", "put", "patch", "delete"}


def documented() -> dict[tuple[str, str, str], dict[str, object]]:
    """Each state-changing operation of each service's document, by service, method and path."""
    operations = {}
    for document in sorted(DOCS.glob("*.openapi.json")):
        service = document.name.removesuffix(".openapi.json")
        for path, methods in json.loads(document.read_text())["paths"].items():
            for method, operation in methods.items():
                if method in STATE_CHANGING:
                    operations[(service, method.upper(), path)] = operation
    return operations


def test_every_state_changing_operation_is_in_the_retry_table() -> None:
    tabled = {
        (service, method, path)
        for service, operations in OPERATIONS.items()
        for method, path in operations
    }
    assert len(documented()) >= 14  # the documents were read
    assert set(documented()) - tabled == set(), "operations without an entry in OPERATIONS"
    assert tabled - set(documented()) == set(), "entries for operations no document has"


@pytest.mark.parametrize("operation", sorted(documented()), ids="-".join)
def test_every_state_changing_operation_documents_its_idempotency_key(
    operation: tuple[str, str, str],
) -> None:
    parameters = documented()[operation].get("parameters", [])
    assert isinstance(parameters, list)
    assert any(p["in"] == "header" and p["name"] == "Idempotency-Key" for p in parameters)
