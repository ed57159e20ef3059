"""The local stack: idempotent start, service schemas isolated by role and owned by none."""

from __future__ import annotations

import asyncpg
import pytest

from deploy.local import keycloak, stack
from deploy.local.stack import Endpoints
from shared.db import MIGRATOR_ROLE, service_dsn
from shared.settings import SERVICES, DatabaseSettings

pytestmark = pytest.mark.integration


def test_stack_up_again_does_no_harm(infrastructure: Endpoints) -> None:
    if infrastructure.kafka_bootstrap_servers != "127.0.0.1:9092":
        pytest.skip("the suite runs on external infrastructure, not the local stack")

    identity_provider = keycloak.status()
    assert stack.up() == infrastructure
    assert keycloak.status() == identity_provider is not None  # not restarted


async def test_each_service_role_uses_its_schema_owns_none_and_is_refused_elsewhere(
    database_settings: DatabaseSettings,
) -> None:
    password = database_settings.service_role_password
    admin = await asyncpg.connect(database_settings.database_url)
    try:
        owners = dict(
            await admin.fetch(
                "SELECT nspname, pg_get_userbyid(nspowner) FROM pg_namespace "
                "WHERE nspname = ANY($1::text[])",
                list(SERVICES),
            )
        )
    finally:
        await admin.close()
    assert owners == dict.fromkeys(SERVICES, MIGRATOR_ROLE)

    enrolment = await asyncpg.connect(
        service_dsn(database_settings.database_url, "enrolment", password)
    )
    billing = await asyncpg.connect(
        service_dsn(database_settings.database_url, "billing", password)
    )
    try:
        # Its scratch schema is its own, for rebuilding projections; nobody else's.
        await billing.execute("CREATE TABLE billing_scratch.probe (id int)")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await enrolment.fetch("SELECT * FROM billing_scratch.probe")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await enrolment.execute("CREATE TABLE enrolment.planted (id int)")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await enrolment.execute("CREATE TABLE billing.intruder (id int)")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await enrolment.execute("CREATE TABLE public.intruder (id int)")
    finally:
        await enrolment.close()
        await billing.close()
