"""Database layout: one schema per service, used by that service's own login role and owned by
the migration role, so that a service can write what it must and rewrite nothing."""

from __future__ import annotations

import contextlib
from typing import TypeAlias
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt

from shared.retries import JITTERED_BACKOFF
from shared.settings import SERVICES

# The database went away under a connection (restart, failover, network): retried, not fatal.
CONNECTION_LOST: tuple[type[Exception], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
    # A connection the restart cut mid-operation can answer the next one with "cannot switch to
    # state N; another operation is in progress": it is broken, and the pool replaces it.
    asyncpg.InternalClientError,
)

# A connection of its own or one borrowed from a pool: the code using it cannot tell.
DbConnection: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"


# Owns every schema, table, sequence and function the migrations create; nobody logs in as it.
# The migration job's login is a member and works under it (``as_migrator``), so no service
# login owns, and so can rewrite, truncate or drop, what it writes.
MIGRATOR_ROLE = "berlian_migrator"


def service_role(service: str) -> str:
    return f"berlian_{service}"


async def as_migrator(conn: DbConnection) -> None:
    """Make what this connection creates belong to the migration role."""
    await conn.execute(f"SET ROLE {MIGRATOR_ROLE}")


async def provision_service_schemas(admin_dsn: str, password: str) -> None:
    """Create the migration role, each service's login role and the schemas.

    A service's live schema belongs to the migration role (the service may use it, never alter
    it); its scratch schema, where it rebuilds projections beside the live ones, is its own.
    Objects an earlier version let a service own are handed to the migration role. Idempotent:
    safe to run before every start (it is the first step of the migration job).
    """
    conn = await asyncpg.connect(admin_dsn)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", MIGRATOR_ROLE):
            with contextlib.suppress(asyncpg.DuplicateObjectError):  # created meanwhile
                await _on_roles(conn, f"CREATE ROLE {MIGRATOR_ROLE} NOLOGIN")
        await _on_roles(conn, f"GRANT {MIGRATOR_ROLE} TO CURRENT_USER")
        for service in SERVICES:
            role = service_role(service)
            await _login_role(conn, role, password)
            await _owned_by(conn, service, MIGRATOR_ROLE)
            await conn.execute(f"GRANT USAGE ON SCHEMA {service} TO {role}")
            await _owned_by(conn, f"{service}_scratch", role)
        for schema in PLATFORM_SCHEMAS:
            await _owned_by(conn, schema, MIGRATOR_ROLE)
        await conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    finally:
        await conn.close()


async def _login_role(conn: asyncpg.Connection[asyncpg.Record], role: str, password: str) -> None:
    """``role`` made (or kept) a login that can create nothing, with ``password``; the
    administrative login may act as it (to hand it its scratch schemas)."""
    exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role)
    verb = "ALTER" if exists else "CREATE"
    # Identifiers come from fixed names in the code; the password is a literal.
    await _on_roles(
        conn,
        f"{verb} ROLE {role} LOGIN NOCREATEDB NOCREATEROLE NOINHERIT PASSWORD {_literal(password)}",
    )
    await _on_roles(conn, f"GRANT {role} TO CURRENT_USER")


async def _on_roles(conn: asyncpg.Connection[asyncpg.Record], statement: str) -> None:
    """A statement on roles, which every database of the server shares: one racing another
    database's provisioning of the same role fails with "tuple concurrently updated", and is
    simply run again."""
    retrying = AsyncRetrying(
        retry=retry_if_exception(
            lambda error: (
                isinstance(error, asyncpg.InternalServerError)
                and "concurrently updated" in str(error)
            )
        ),
        wait=JITTERED_BACKOFF,
        stop=stop_after_attempt(8),
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            await conn.execute(statement)


# Schemas of no service: the key store (shared.keystore), the signed checkpoints
# (shared.audit.checkpoints) and the revoked tokens (shared.revocation), which build their
# tables; named here for provisioning.
PLATFORM_SCHEMAS = ("keystore", "checkpoints", "revocations")


async def _owned_by(conn: asyncpg.Connection[asyncpg.Record], schema: str, owner: str) -> None:
    """``schema`` and everything in it owned by ``owner``, closed to everybody else."""
    await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema} AUTHORIZATION {owner}")
    await conn.execute(f"ALTER SCHEMA {schema} OWNER TO {owner}")
    await conn.execute(f"REVOKE ALL ON SCHEMA {schema} FROM PUBLIC")
    objects = await conn.fetch(
        """
        SELECT CASE c.relkind WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END AS kind, c.relname AS name
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'S', 'v')
          AND pg_get_userbyid(c.relowner) <> $2
          -- a serial's sequence follows its table
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'a')
        UNION ALL
        SELECT 'FUNCTION', p.oid::regprocedure::text
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = $1 AND pg_get_userbyid(p.proowner) <> $2
        """,
        schema,
        owner,
    )
    for row in objects:
        name = row["name"] if row["kind"] == "FUNCTION" else f'{schema}."{row["name"]}"'
        await conn.execute(f"ALTER {row['kind']} {name} OWNER TO {owner}")


async def provision_login(
    admin_dsn: str, role: str, password: str, scratch_schemas: tuple[str, ...]
) -> None:
    """A login role that owns nothing but its scratch schemas (the audit page's), with
    ``password``; what it may read is granted by ``shared.privileges``. Idempotent."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        await _login_role(conn, role, password)
        for schema in scratch_schemas:
            await _owned_by(conn, schema, role)
    finally:
        await conn.close()


def service_dsn(admin_dsn: str, service: str, password: str) -> str:
    """The admin DSN with the service's own role as the user."""
    return login_dsn(admin_dsn, service_role(service), password)


def login_dsn(admin_dsn: str, role: str, password: str) -> str:
    """The admin DSN's server and database with another login."""
    parts = urlsplit(admin_dsn)
    host = parts.hostname or "127.0.0.1"
    port = f":{parts.port}" if parts.port else ""
    netloc = f"{role}:{password}@{host}{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
