"""The event contract served by every service, read-only and without a token: the JSON Schema
of the envelope and of each event type and version, and the AsyncAPI document of the topics.

A consumer fetches what the running system publishes, not a copy it was once given. The files
served are the committed ones packaged with the code (``contract/events/schemas/``,
``contract/events/asyncapi.json``), which the unit tests keep equal to what the code generates.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from contract.events.registry import EVENT_TYPES
from contract.events.schemas import SCHEMA_DIR, committed_schemas

ASYNCAPI_FILE = Path(__file__).resolve().parent / "events" / "asyncapi.json"
SCHEMA_MEDIA_TYPE = "application/schema+json"


@cache
def _schemas() -> dict[str, dict[str, Any]]:
    return committed_schemas(SCHEMA_DIR)


@cache
def _asyncapi() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(ASYNCAPI_FILE.read_text())
    return document


def _not_found(detail: str) -> JSONResponse:
    return JSONResponse(
        {"type": "about:blank", "title": "Not Found", "status": 404, "detail": detail},
        status_code=404,
        media_type="application/problem+json",
    )


def contract_router() -> APIRouter:
    # Left out of each service's OpenAPI document, which describes its commands and reads; the
    # contract is described by itself (the AsyncAPI document) and in docs/consuming.md.
    router = APIRouter(prefix="/contract", tags=["event contract"], include_in_schema=False)

    @router.get("/events", summary="The event types, their owners and versions")
    async def event_index() -> dict[str, Any]:
        return {
            "envelope": "/contract/envelope",
            "asyncapi": "/contract/asyncapi.json",
            "events": [
                {
                    "event_type": kind.name,
                    "owner": kind.owner,
                    "current_version": kind.current_version,
                    "versions": {
                        str(v): f"/contract/events/{kind.name}/{v}" for v in sorted(kind.versions)
                    },
                }
                for kind in EVENT_TYPES.values()
            ],
        }

    @router.get("/envelope", summary="The JSON Schema of the envelope")
    async def envelope_schema() -> JSONResponse:
        return JSONResponse(_schemas()["Envelope.json"], media_type=SCHEMA_MEDIA_TYPE)

    @router.get(
        "/events/{event_type}/{version}",
        summary="The JSON Schema of one version of an event's data",
        responses={404: {"description": "no such event type or version"}},
    )
    async def event_schema(event_type: str, version: int) -> JSONResponse:
        schema = _schemas().get(f"{event_type}.v{version}.json")
        if schema is None:
            kind = EVENT_TYPES.get(event_type)
            if kind is None:
                return _not_found(f"unknown event type {event_type[:100]!r}")
            return _not_found(
                f"{kind.name} has no schema version {version} (known: {sorted(kind.versions)})"
            )
        return JSONResponse(schema, media_type=SCHEMA_MEDIA_TYPE)

    @router.get("/asyncapi.json", summary="The AsyncAPI 3.0 document of the topics")
    async def asyncapi() -> dict[str, Any]:
        return _asyncapi()

    return router
