"""Every service's projections, by service: what replay and re-drive can rebuild."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import asyncpg

from services.billing.projections import PROJECTIONS as BILLING
from services.billing.write_side import WRITE_MODEL as BILLING_WRITE_MODEL
from services.claims.projections import PROJECTIONS as CLAIMS
from services.claims.write_side import WRITE_MODEL as CLAIMS_WRITE_MODEL
from services.enrolment.imports import IMPORT_TABLES
from services.enrolment.projections import PROJECTIONS as ENROLMENT
from services.enrolment.write_side import WRITE_MODEL as ENROLMENT_WRITE_MODEL
from services.verification.projections import PROJECTIONS as VERIFICATION
from services.verification.write_side import WRITE_MODEL as VERIFICATION_WRITE_MODEL
from shared import keystore
from shared.db import provision_service_schemas, service_dsn, service_role
from shared.eventstore.migrations import PLATFORM, Migration, migrate
from shared.projection.writer import Projection
from shared.settings import SERVICES, DatabaseSettings

# Services that seal or read personal data hold the per-worker keys.
KEY_HOLDERS = ("enrolment", "claims")

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
    """Schemas and roles, then each service's tables created by its own role; idempotent."""
    await provision_service_schemas(database.database_url, database.service_role_password)
    applied = {}
    for service in SERVICES:
        dsn = service_dsn(database.database_url, service, database.service_role_password)
        conn = await asyncpg.connect(dsn)
        try:
            steps = [
                *PLATFORM,
                *WRITE_MODELS.get(service, ()),
                *(m for p in PROJECTIONS.get(service, ()) for m in p.migrations),
            ]
            applied[service] = await migrate(conn, service, steps)
        finally:
            await conn.close()
    applied["keystore"] = await _migrate_keystore(database)
    return applied


async def _migrate_keystore(database: DatabaseSettings) -> list[str]:
    """The per-worker keys, readable and erasable by the services that seal personal data."""
    conn = await asyncpg.connect(database.database_url)
    try:
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {keystore.SCHEMA}")
        applied = await migrate(conn, keystore.SCHEMA, keystore.MIGRATIONS)
        for service in KEY_HOLDERS:
            role = service_role(service)
            await conn.execute(f"GRANT USAGE ON SCHEMA {keystore.SCHEMA} TO {role}")
            await conn.execute(
                f"GRANT SELECT, INSERT, DELETE ON ALL TABLES IN SCHEMA {keystore.SCHEMA} TO {role}"
            )
        return applied
    finally:
        await conn.close()
