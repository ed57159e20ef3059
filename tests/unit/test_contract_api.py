"""Every service serves the event contract it writes by: each event's JSON Schema by type and
version, the envelope's, and the AsyncAPI document, read-only and without a token."""

from __future__ import annotations

from typing import cast

import httpx
import pytest

from contract.events.registry import EVENT_TYPES
from contract.events.schemas import generated_schemas
from services.asyncapi import asyncapi_document
from services.claims.api import create_app
from services.claims.service import ClaimsService
from shared.auth import AuthSettings

pytestmark = pytest.mark.unit


def client() -> httpx.AsyncClient:
    # Route declarations do not touch the service object; the contract routes use none.
    app = create_app(cast(ClaimsService, object()), AuthSettings())
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://claims")


async def test_each_event_version_has_its_schema_served() -> None:
    schemas = generated_schemas()
    async with client() as api:
        index = (await api.get("/contract/events")).json()
        assert {e["event_type"] for e in index["events"]} == set(EVENT_TYPES)
        for entry in index["events"]:
            for version, path in entry["versions"].items():
                served = await api.get(path)
                assert served.status_code == 200, path
                assert served.headers["content-type"] == "application/schema+json"
                assert served.json() == schemas[f"{entry['event_type']}.v{version}.json"]
        envelope = await api.get("/contract/envelope")
        assert envelope.json() == schemas["Envelope.json"]


async def test_the_asyncapi_document_is_served_as_generated() -> None:
    async with client() as api:
        served = await api.get("/contract/asyncapi.json")

    assert served.status_code == 200
    assert served.json() == asyncapi_document()


async def test_an_unknown_type_or_version_is_named_in_a_404() -> None:
    async with client() as api:
        unknown_type = await api.get("/contract/events/WorkerTeleported/1")
        unknown_version = await api.get("/contract/events/WorkerRegistered/9")

    assert unknown_type.status_code == 404
    assert "WorkerTeleported" in unknown_type.json()["detail"]
    assert unknown_version.status_code == 404
    assert (
        "WorkerRegistered has no schema version 9 (known: [1, 2])"
        in (unknown_version.json()["detail"])
    )
