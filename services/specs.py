"""The published interface documents, generated from the code and committed under docs/api/:
an OpenAPI document per service's HTTP API, and one AsyncAPI document for the event topics.

``python -m services.specs`` rewrites them; a test fails when the committed ones differ.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

from services.billing.api import create_app as billing_app
from services.billing.service import BillingService
from services.claims.api import create_app as claims_app
from services.claims.service import ClaimsService
from services.enrolment.api import create_app as enrolment_app
from services.enrolment.service import EnrolmentService
from services.verification.api import create_app as verification_app
from services.verification.service import VerificationService
from shared.auth import AuthSettings
from shared.events.envelope import Envelope
from shared.events.registry import EVENT_TYPES
from shared.settings import SERVICES

DOCS = Path(__file__).resolve().parents[1] / "docs" / "api"


def openapi_documents() -> dict[str, dict[str, Any]]:
    # Route declarations do not touch the service object: a placeholder describes the API.
    auth = AuthSettings()
    apps = {
        "enrolment": enrolment_app(cast(EnrolmentService, object()), auth),
        "verification": verification_app(cast(VerificationService, object()), auth),
        "billing": billing_app(cast(BillingService, object()), auth),
        "claims": claims_app(cast(ClaimsService, object()), auth),
    }
    return {f"{name}.openapi.json": app.openapi() for name, app in apps.items()}


def asyncapi_document() -> dict[str, Any]:
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    for service in SERVICES:
        owned = [kind for kind in EVENT_TYPES.values() if kind.owner == service]
        channels[f"berlian.{service}.events"] = {
            "address": f"{{prefix}}{service}.events",
            "description": f"Events owned and written only by {service}; key: worker_id, "
            "else stream_id. Retained forever.",
            "messages": {
                kind.name: {"$ref": f"#/components/messages/{kind.name}"} for kind in owned
            },
        }
        for kind in owned:
            messages[kind.name] = {
                "name": kind.name,
                "headers": {
                    "type": "object",
                    "properties": {
                        "event_type": {"const": kind.name},
                        "schema_version": {"enum": [str(v) for v in kind.versions]},
                        "content-type": {"const": "application/json"},
                        "correlation_id": {"type": "string", "format": "uuid"},
                    },
                },
                "payload": {
                    "allOf": [
                        {"$ref": "#/components/schemas/Envelope"},
                        {"properties": {"data": kind.model.model_json_schema()}},
                    ]
                },
            }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Berlian events",
            "version": "1",
            "description": "The event contract: one topic per producing service.",
        },
        "channels": channels,
        "components": {"messages": messages, "schemas": {"Envelope": Envelope.model_json_schema()}},
    }


def documents() -> dict[str, dict[str, Any]]:
    return {**openapi_documents(), "asyncapi.json": asyncapi_document()}


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True, default=str) + "\n"


def main() -> None:
    DOCS.mkdir(parents=True, exist_ok=True)
    for name, document in documents().items():
        (DOCS / name).write_text(render(document))
    print(f"wrote {len(documents())} documents to {DOCS}")


if __name__ == "__main__":
    main()
