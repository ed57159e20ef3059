"""The published interface documents, generated from the code and committed under docs/api/:
an OpenAPI document per service's HTTP API and one for the audit application's, and one
AsyncAPI document for the event topics (``services.asyncapi``; docs/api/asyncapi.json links to
the copy the services serve, packaged as ``contract/events/asyncapi.json``).

``python -m services.specs`` rewrites them; a test fails when the committed ones differ.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import asyncpg

from services.asyncapi import asyncapi_document
from services.audit.web import create_app as audit_app
from services.billing.api import create_app as billing_app
from services.billing.service import BillingService
from services.claims.api import create_app as claims_app
from services.claims.service import ClaimsService
from services.enrolment.api import create_app as enrolment_app
from services.enrolment.service import EnrolmentService
from services.verification.api import create_app as verification_app
from services.verification.service import VerificationService
from shared.auth import AuthSettings
from shared.settings import KafkaSettings

DOCS = Path(__file__).resolve().parents[1] / "docs" / "api"


def openapi_documents() -> dict[str, dict[str, Any]]:
    # Route declarations do not touch the service object: a placeholder describes the API.
    auth = AuthSettings()
    apps = {
        "enrolment": enrolment_app(cast(EnrolmentService, object()), auth),
        "verification": verification_app(cast(VerificationService, object()), auth),
        "billing": billing_app(cast(BillingService, object()), auth),
        "claims": claims_app(cast(ClaimsService, object()), auth),
        "audit": audit_app(cast(asyncpg.Pool, object()), KafkaSettings(), auth),
    }
    return {f"{name}.openapi.json": app.openapi() for name, app in apps.items()}


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
