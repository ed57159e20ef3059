"""The audit application's API (`berlian audit web`) on the real stack, through its own
database login: it answers the tokens the services accept, for the auditor and the city
administrator only; a token revoked later is refused at its next request; every answer is the
typed one its OpenAPI document publishes. Tokens come from the real identity provider."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import httpx
import jwt
import pytest

from deploy.local import keycloak
from services.audit.web import (
    ChainCheck,
    Operations,
    ProgrammeReport,
    ProgrammeState,
    WorkerHistory,
    create_app,
)
from shared.auth import AuthSettings
from shared.db import login_dsn
from shared.privileges import AUDIT_WEB_ROLE, AuditWebLogin
from shared.revocation import REFRESH_SECONDS, revoke_subject
from shared.settings import DatabaseSettings, KafkaSettings
from tests.tokens import bearer, crafted

pytestmark = pytest.mark.integration


@pytest.fixture
async def audit_api(
    migrated: DatabaseSettings, kafka_settings: KafkaSettings
) -> AsyncIterator[httpx.AsyncClient]:
    # Its own login, as `berlian audit web` connects.
    dsn = login_dsn(migrated.database_url, AUDIT_WEB_ROLE, AuditWebLogin().password())
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    app = create_app(pool, kafka_settings, AuthSettings())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://audit") as client:
        yield client
    await pool.close()


async def test_a_caller_without_an_auditors_token_is_refused(audit_api: httpx.AsyncClient) -> None:
    anonymous = await audit_api.get("/operations")
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == "Bearer"
    officer = await audit_api.get(
        "/operations", headers=bearer("kelurahan_officer", "33.75.03.1002")
    )
    assert officer.status_code == 403
    assert "role kelurahan_officer may not do this" in officer.json()["detail"]
    # A token for another audience only (a service's), or expired, proves nothing here.
    for claims in ({"aud": "berlian-enrolment"}, {"exp": 1_000_000_000}):
        token = crafted("auditor", **claims)
        refused = await audit_api.get("/operations", headers={"Authorization": f"Bearer {token}"})
        assert refused.status_code == 401, claims


async def test_the_auditor_and_the_city_read_every_answer(audit_api: httpx.AsyncClient) -> None:
    for role in ("auditor", "city_admin"):
        caller = bearer(role)  # type: ignore[arg-type]
        operations = await audit_api.get("/operations", headers=caller)
        assert operations.status_code == 200, operations.text
        Operations.model_validate(operations.json())
    auditor = bearer("auditor")
    nobody = uuid.uuid4()
    history = await audit_api.get(f"/workers/{nobody}/history", headers=auditor)
    assert WorkerHistory.model_validate(history.json()).total == 0
    state = ProgrammeState.model_validate(
        (await audit_api.get("/programme", params={"on": "2024-11-18"}, headers=auditor)).json()
    )
    assert [f.question for f in state.figures] == [
        "workers by status and cohort",
        "premiums due and paid",
        "claims open and decided",
    ]
    report = ProgrammeReport.model_validate(
        (await audit_api.get("/reports/2024", headers=auditor)).json()
    )
    assert report.loss_ratio is None  # nothing paid on this run's empty topics
    assert len(report.figures) == 4
    checked = ChainCheck.model_validate(
        (await audit_api.get("/verification", headers=auditor)).json()
    )
    assert checked.ok
    assert checked.findings == []
    # Bounds are checked before anything is read.
    assert (await audit_api.get("/reports/1999", headers=auditor)).status_code == 422
    paged = await audit_api.get(
        f"/workers/{nobody}/history", params={"limit": 501}, headers=auditor
    )
    assert paged.status_code == 422


async def test_a_token_revoked_after_it_was_issued_is_refused(
    audit_api: httpx.AsyncClient, migrated: DatabaseSettings
) -> None:
    token = keycloak.token("auditor", None, "audit-revoked")["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert (await audit_api.get("/operations", headers=headers)).status_code == 200
    admin = await asyncpg.connect(migrated.database_url)
    try:
        subject = jwt.decode(token, options={"verify_signature": False})["sub"]
        await revoke_subject(admin, subject, timedelta(hours=1), "security officer", "test")
    finally:
        await admin.close()
    for _ in range(int(REFRESH_SECONDS * 10) + 100):
        answer = await audit_api.get("/operations", headers=headers)
        if answer.status_code == 401:
            break
        await asyncio.sleep(0.1)
    assert answer.status_code == 401
    assert "revoked" in answer.json()["detail"]
    # Another auditor's token is still good.
    assert (await audit_api.get("/operations", headers=bearer("auditor"))).status_code == 200
