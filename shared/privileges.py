"""What each service's login may do in PostgreSQL, granted after every migration.

History is append-only for the services: they insert and read their events, their idempotency
records and the erasure of a key, and never update, delete or truncate them; the stream heads
move (and only forward, see ``shared.eventstore.migrations``), the outbox empties as the broker
acknowledges, projections are rewritten as they are. Nothing in a live schema is a service's to
alter, drop or truncate: the migration role owns it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Self
from urllib.parse import urlsplit

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from shared.db import DbConnection, login_dsn, service_role
from shared.settings import (
    DEVELOPMENT_PASSWORD,
    DatabaseSettings,
    GuardedSettings,
    LocalDefault,
    MissingSettingError,
    local_development,
)

# Platform tables in every service schema, and the privileges of the service's own login.
PLATFORM_GRANTS: Mapping[str, str] = {
    "events": "SELECT, INSERT",
    "streams": "SELECT, INSERT, UPDATE (version, last_hash)",
    # The row is claimed first, then filled in once with the events appended and the answer.
    "commands": "SELECT, INSERT, UPDATE (event_ids, first_version, last_version, response)",
    # A batched request's whole answer, recorded once with what it appended.
    "request_answers": "SELECT, INSERT",
    "outbox": "SELECT, INSERT, DELETE",
    # Events the broker refused for good: set aside with the reason, never taken back.
    "outbox_parked": "SELECT, INSERT",
    "projection_positions": "SELECT, INSERT, UPDATE",
    "projection_streams": "SELECT, INSERT, UPDATE, DELETE",
    # A letter's record stays as it failed; its state moves (published, re-driven, resolved).
    "dead_letters": "SELECT, INSERT, UPDATE (published, reason, parked, resolution, resolved_at, "
    "resolved_by, resolution_note)",
    "schema_migrations": "SELECT",
}
# A service's own tables (projections, write-side lookups): read and written row by row.
OWN_TABLES = "SELECT, INSERT, UPDATE, DELETE"
# Platform functions a service's login calls: each runs with the caller's rights, so it can do
# only what the grants above allow.
PLATFORM_FUNCTIONS = ("append_command",)

# The key store, by service: enrolment seals, reads and erases; claims seals and reads, and
# can neither delete a key nor see or touch the erasure records. Others hold no keys.
KEYSTORE_GRANTS: Mapping[str, Mapping[str, str]] = {
    "enrolment": {"data_keys": "SELECT, INSERT, DELETE", "erasures": "INSERT"},
    "claims": {"data_keys": "SELECT, INSERT"},
}


async def grant_service_privileges(conn: DbConnection, service: str, schema: str) -> None:
    """Exactly the privileges above on ``schema``'s tables for ``service``'s login."""
    role = service_role(service)
    await conn.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM {role}")
    tables = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = $1", schema)
    for row in tables:
        table = row["tablename"]
        privileges = PLATFORM_GRANTS.get(table, OWN_TABLES)
        await conn.execute(f'GRANT {privileges} ON TABLE {schema}."{table}" TO {role}')
    await conn.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {role}")
    # A sequence of its own (not a table's serial, such as the events' positions) it may also
    # set: a restore moves the membership numbers past the highest one given.
    standalone = await conn.fetch(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = $1 AND c.relkind = 'S' AND NOT EXISTS "
        "(SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype IN ('a', 'i'))",
        schema,
    )
    for row in standalone:
        await conn.execute(f'GRANT UPDATE ON SEQUENCE {schema}."{row["relname"]}" TO {role}')
    functions = await conn.fetch(
        "SELECT p.oid::regprocedure::text AS signature FROM pg_proc p "
        "JOIN pg_namespace n ON n.oid = p.pronamespace "
        "WHERE n.nspname = $1 AND p.proname = any($2::text[])",
        schema,
        list(PLATFORM_FUNCTIONS),
    )
    for row in functions:
        await conn.execute(f"GRANT EXECUTE ON FUNCTION {row['signature']} TO {role}")


async def grant_keystore_privileges(
    conn: DbConnection, schema: str, services: tuple[str, ...]
) -> None:
    for service in services:
        role = service_role(service)
        await conn.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM {role}")
        grants = KEYSTORE_GRANTS.get(service, {})
        if grants:
            await conn.execute(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
        else:
            await conn.execute(f"REVOKE USAGE ON SCHEMA {schema} FROM {role}")
        for table, privileges in grants.items():
            await conn.execute(f"GRANT {privileges} ON TABLE {schema}.{table} TO {role}")


async def grant_checkpoint_age(conn: DbConnection, schema: str, services: tuple[str, ...]) -> None:
    """A service may read when the newest checkpoint was taken (its age gauge), nothing else:
    it can neither read the signed heads nor write a checkpoint."""
    for service in services:
        role = service_role(service)
        await conn.execute(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
        await conn.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM {role}")
        await conn.execute(f"GRANT SELECT (taken_at) ON {schema}.checkpoints TO {role}")


# The audit web page's login: it reads the projections' positions and waiting dead letters of
# every service (its operations page) and rebuilds the auditors' projections from the topics
# into scratch schemas it owns; it writes nothing else, and reads no event, key or personal row.
AUDIT_WEB_ROLE = "berlian_audit_web"
AUDIT_WEB_LABEL = "web"
AUDIT_WEB_READS: Mapping[str, str] = {
    "projection_positions": "SELECT",
    "dead_letters": "SELECT (consumer, reason, resolved_at)",
}


def audit_scratch_schema(label: str, service: str, projection: str) -> str:
    """Where an auditor's rebuild under ``label`` puts one projection."""
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,30}", label):
        raise ValueError(f"label {label!r}: lower-case letters, digits and _ only, at most 31")
    return f"audit_{label}_{service}_{projection}"


class AuditWebLogin(GuardedSettings):
    """The audit page's database login (``AUDIT_WEB_DATABASE_URL``, its own role and password,
    never the administrative login); the migration job sets the role's password from it."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    audit_web_database_url: Annotated[
        str,
        LocalDefault(""),
        Field(
            description=f"The audit page's login, as {AUDIT_WEB_ROLE}; in local development "
            "unset means DATABASE_URL's server and database with the local password."
        ),
    ] = ""

    @model_validator(mode="after")
    def _own_login(self) -> Self:
        if not self.audit_web_database_url:
            return self
        parts = urlsplit(self.audit_web_database_url)
        if parts.username != AUDIT_WEB_ROLE:
            raise MissingSettingError(
                f"AUDIT_WEB_DATABASE_URL must log in as {AUDIT_WEB_ROLE}, not {parts.username!r}"
            )
        if not parts.password or (
            parts.password == DEVELOPMENT_PASSWORD and not local_development()
        ):
            raise MissingSettingError(
                "AUDIT_WEB_DATABASE_URL needs a password of its own (the local stack's "
                "documented one is refused outside local development)"
            )
        return self

    def dsn(self) -> str:
        if self.audit_web_database_url:
            return self.audit_web_database_url
        return login_dsn(DatabaseSettings().database_url, AUDIT_WEB_ROLE, DEVELOPMENT_PASSWORD)

    def password(self) -> str:
        return urlsplit(self.dsn()).password or ""


async def grant_audit_web_privileges(conn: DbConnection, services: tuple[str, ...]) -> None:
    """What the audit page reads of each service: positions and waiting letters' reasons."""
    for service in services:
        await conn.execute(f"GRANT USAGE ON SCHEMA {service} TO {AUDIT_WEB_ROLE}")
        await conn.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA {service} FROM {AUDIT_WEB_ROLE}")
        for table, privileges in AUDIT_WEB_READS.items():
            await conn.execute(f"GRANT {privileges} ON TABLE {service}.{table} TO {AUDIT_WEB_ROLE}")
