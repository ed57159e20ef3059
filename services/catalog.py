"""Every service's projections, by service: what replay and re-drive can rebuild."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import asyncpg

from services.billing.projections import PROJECTIONS as BILLING
from services.billing.write_side import WRITE_MODEL as BILLING_WRITE_MODEL
from services.claims.projections import PROJECTIONS as CLAIMS
from services.claims.write_side import WRITE_MODEL as CLAIMS_WRITE_MODEL
from services.enrolment.import_jobs import IMPORT_TABLES
from services.enrolment.projections import PROJECTIONS as ENROLMENT
from services.enrolment.write_side import WRITE_MODEL as ENROLMENT_WRITE_MODEL
from services.verification.projections import PROJECTIONS as VERIFICATION
from services.verification.write_side import WRITE_MODEL as VERIFICATION_WRITE_MODEL
from shared import keystore, revocation
from shared.audit import checkpoints
from shared.db import as_migrator, provision_login, provision_service_schemas
from shared.eventstore.migrations import PLATFORM, Migration, migrate
from shared.kms import key_encryption_from_environment
from shared.privileges import (
    AUDIT_WEB_LABEL,
    AUDIT_WEB_ROLE,
    AuditWebLogin,
    audit_scratch_schema,
    grant_audit_web_privileges,
    grant_checkpoint_age,
    grant_keystore_privileges,
    grant_service_privileges,
)
from shared.projection.writer import Projection
from shared.settings import SERVICES, DatabaseSettings

PROJECTIONS: Mapping[str, Sequence[Projection]] = {
    "enrolment": ENROLMENT,
    "verification": VERIFICATION,
    "billing": BILLING,
    "claims": CLAIMS,
}
# Tables of the write side beyond the event store (indexes, import reports).
WRITE_MODELS: Mapping[str, Sequence[Migration]] = {
    "enrolment": (*ENROLMENT_WRITE_MODEL, *IMPORT_TABLES),
    "verification": VERIFICATION_WRITE_MODEL,
    "billing": BILLING_WRITE_MODEL,
    "claims": CLAIMS_WRITE_MODEL,
}


def projection_named(service: str, name: str) -> Projection:
    for projection in PROJECTIONS.get(service, ()):
        if projection.name == name:
            return projection
    known = {s: [p.name for p in ps] for s, ps in PROJECTIONS.items()}
    raise LookupError(f"service {service!r} has no projection {name!r}; known: {known}")


async def migrate_all(database: DatabaseSettings) -> dict[str, list[str]]:
    """Schemas and roles, then every table created under the migration role and each service's
    login granted what it needs of them; idempotent."""
    await provision_service_schemas(database.database_url, database.service_role_password)
    # The audit page rebuilds projections into schemas of its own, one per projection.
    scratch = tuple(
        audit_scratch_schema(AUDIT_WEB_LABEL, service, projection.name)
        for service, projections in PROJECTIONS.items()
        for projection in projections
    )
    await provision_login(
        database.database_url, AUDIT_WEB_ROLE, AuditWebLogin().password(), scratch
    )
    applied = {}
    conn = await asyncpg.connect(database.database_url)
    try:
        await as_migrator(conn)
        for service in SERVICES:
            steps = [
                *PLATFORM,
                *WRITE_MODELS.get(service, ()),
                *(m for p in PROJECTIONS.get(service, ()) for m in p.migrations),
            ]
            applied[service] = await migrate(conn, service, steps)
            await grant_service_privileges(conn, service, service)
        await grant_audit_web_privileges(conn, SERVICES)
        applied[keystore.SCHEMA] = await keystore.migrate_keystore(
            conn, key_encryption_from_environment
        )
        await grant_keystore_privileges(conn, keystore.SCHEMA, SERVICES)
        applied[checkpoints.SCHEMA] = await migrate(
            conn, checkpoints.SCHEMA, checkpoints.MIGRATIONS
        )
        await grant_checkpoint_age(conn, checkpoints.SCHEMA, SERVICES)
        applied[revocation.SCHEMA] = await migrate(conn, revocation.SCHEMA, revocation.MIGRATIONS)
        await revocation.grant_revocation_reading(
            conn, (*revocation.service_roles(SERVICES), AUDIT_WEB_ROLE)
        )
    finally:
        await conn.close()
    return applied
