"""The AsyncAPI document resolves, validates against the official AsyncAPI 3.0.0 JSON Schema
(vendored, see fixtures/asyncapi/SOURCE.md), and describes every topic, version and header."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator, Draft202012Validator

from contract.events.registry import EVENT_TYPES
from services.asyncapi import asyncapi_document, message_id
from shared.relay.outbox import record_headers
from shared.settings import SERVICES
from tests.unit.chains import sealed_chain

pytestmark = pytest.mark.unit

OFFICIAL_SCHEMA = Path(__file__).parent / "fixtures" / "asyncapi" / "3.0.0.json"


def references(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from references(value)
    elif isinstance(node, list):
        for value in node:
            yield from references(value)


def resolve(document: dict[str, Any], reference: str) -> Any:
    assert reference.startswith("#/"), f"{reference} points outside the document"
    node: Any = document
    for part in reference[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict), f"{reference}: {part} is not inside an object"
        assert part in node, f"{reference} does not resolve: no {part!r}"
        node = node[part]
    return node


def test_the_document_is_valid_asyncapi_3_0_0() -> None:
    official = json.loads(OFFICIAL_SCHEMA.read_text())
    errors = sorted(Draft7Validator(official).iter_errors(asyncapi_document()), key=str)

    assert [f"{list(e.absolute_path)}: {e.message}" for e in errors] == []


def test_the_official_schema_refuses_a_broken_document() -> None:
    """The validation can fail: an operation without its action is refused."""
    official = json.loads(OFFICIAL_SCHEMA.read_text())
    broken = asyncapi_document()
    del broken["operations"]["enrolment.sendEvents"]["action"]

    assert not Draft7Validator(official).is_valid(broken)


def test_every_reference_resolves_inside_the_document() -> None:
    document = asyncapi_document()
    found = list(references(document))

    assert len(found) > 100
    for reference in found:
        resolve(document, reference)


def test_every_version_of_every_event_is_a_message_of_its_owners_channel() -> None:
    document = asyncapi_document()
    for kind in EVENT_TYPES.values():
        channel = document["channels"][f"{kind.owner}.events"]
        for version in kind.versions:
            name = message_id(kind, version)
            assert name in channel["messages"], name
            message = document["components"]["messages"][name]
            assert message["headers"]["properties"]["schema_version"] == {"const": str(version)}
            data = message["payload"]["allOf"][1]["properties"]["data"]["$ref"]
            assert resolve(document, data)["title"] == kind.versions[version].__name__


def test_channels_servers_operations_and_bindings() -> None:
    document = asyncapi_document()

    assert set(document["servers"]) == {"local", "kubernetes"}
    for service in SERVICES:
        for suffix in ("events", "dlq"):
            channel = document["channels"][f"{service}.{suffix}"]
            assert channel["address"] == f"{{prefix}}{service}.{suffix}"
            assert "prefix" in channel["parameters"]
            binding = channel["bindings"]["kafka"]
            assert binding["partitions"] == 12
            assert binding["replicas"] == 3
            assert binding["topicConfiguration"]["retention.ms"] == -1
        assert document["operations"][f"{service}.sendEvents"]["action"] == "send"
    received = {op for op, body in document["operations"].items() if body["action"] == "receive"}
    assert "verification.receiveEnrolmentEvents" in received
    assert "claims.receiveBillingEvents" in received
    for message in document["components"]["messages"].values():
        assert message["bindings"]["kafka"]["key"]["type"] == "string"


def test_a_real_record_matches_its_message_headers_and_payload() -> None:
    document = asyncapi_document()
    envelope = sealed_chain("budget-1", 1)[0]
    headers = {key: value.decode() for key, value in record_headers(envelope)}
    pointer = "#/components/messages/BudgetAllocated.v1"

    for part, instance in (("headers", headers), ("payload", envelope)):
        # The whole document as the root, so that its references resolve.
        validator = Draft202012Validator({**document, "$ref": f"{pointer}/{part}"})
        assert [error.message for error in validator.iter_errors(instance)] == [], part
    declared = set(resolve(document, f"{pointer}/headers")["properties"])
    assert set(headers) | {"traceparent"} <= declared


def test_a_newer_producers_added_field_still_matches_the_payload() -> None:
    document = asyncapi_document()
    envelope = sealed_chain("budget-1", 1)[0]
    envelope["data"]["earmark"] = "kelurahan Medono"
    validator = Draft202012Validator(
        {**document, "$ref": "#/components/messages/BudgetAllocated.v1/payload"}
    )

    assert validator.is_valid(envelope)
    del envelope["data"]["amount"]
    assert not validator.is_valid(envelope)
